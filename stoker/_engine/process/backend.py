"""Process workers: the backend for CPU-bound Python sources.

Workers are started once per loader, on the first epoch, and kept until ``close()``
(``pool.py``). With ``fork`` (the default on Linux, see ``start.py``) they inherit
the source as it is; with ``spawn``/``forkserver`` the source is pickled once and
crosses once. Each epoch is a :class:`ProcessEpochRun` that feeds the pool, all on
the consumer's thread (no helper thread to contend for the GIL):

* Bound: a task is sent only with a token; there are ``max_queue_size + workers``
  tokens and the consumer returns one per batch it takes (``release``), so at most
  that many batches exist at once, in flight, finished or in the reorder buffer.
* Memory: each task also takes a slot of the shared-memory ring (``shm.py``, which
  states the ownership rule); the pool owns the slots of tasks in flight.
* Failures: a worker's exception keeps its type (``tracebacks.py``); a worker that
  dies raises ``WorkerCrashed`` from the same wait (``pool.py``); the next epoch then
  starts a fresh pool.
* Source state: before every epoch after the first, attributes of the source that
  changed in the consumer (``on_epoch_end`` reshuffling its indices, say) are sent to
  the workers (``resync.py``); ``update_s`` records what that cost.
"""

from __future__ import annotations

import collections
import itertools
import sys
import time

from stoker._engine.fetch import Fetcher
from stoker._engine.plan import Key
from stoker._engine.process.pool import WorkerPool
from stoker._engine.process.resync import SourceSync
from stoker._engine.process.start import check_main_guard
from stoker._engine.run import EpochRun, Result, Task
from stoker._errors import ConfigError, LoaderClosed
from stoker._options import LoaderOptions, default_start_method

# Shutting down a broken pool before starting a fresh one.
_RESTART_TIMEOUT_S = 2.0
# Batches that take less than this to produce are sent up to _MAX_CHUNK per message:
# below it, waking a worker costs as much as the batch itself.
_CHEAP_S = 0.0005
_MAX_CHUNK = 8
# Kept for the benchmarks: the cost of the last few source updates.
_UPDATES_KEPT = 64


class ProcessEpochRun:
    """One epoch on a worker pool (see the module docstring for the bound)."""

    def __init__(
        self, pool: WorkerPool, run: int, epoch: int, tasks: list[Task], budget: int
    ) -> None:
        self._pool = pool
        self._run = run
        self._epoch = epoch
        self._todo: collections.deque[tuple[int, Key]] = collections.deque(tasks)
        self._budget = budget
        self._tokens = budget
        self._done: collections.deque[Result] = collections.deque()
        self._stopped = False
        self._pump()

    def _pump(self) -> None:
        pool = self._pool
        todo = self._todo
        while todo and self._tokens > 0 and not self._stopped:
            if pool.failure is not None or pool.closed:
                return
            # Cheap batches travel in chunks: one message and one wake-up for several.
            limit = 1
            if pool.produce_ema_s < _CHEAP_S:
                limit = min(_MAX_CHUNK, -(-self._tokens // pool.workers))
            chunk = [todo.popleft() for _ in range(min(limit, self._tokens, len(todo)))]
            busy = self._tokens < self._budget
            sent = pool.dispatch(self._run, self._epoch, chunk, busy)
            self._tokens -= sent
            if sent < len(chunk):
                todo.extendleft(reversed(chunk[sent:]))
                return

    # -- EpochRun -----------------------------------------------------------------
    def get(self, timeout_s: float) -> Result | None:
        if self._done:
            return self._done.popleft()
        pool = self._pool
        called = time.monotonic()
        deadline = called + timeout_s
        while pool.failure is None and not pool.closed:
            self._pump()
            self._done.extend(pool.receive(self._run, 0.0))
            if self._done:
                return self._done.popleft()
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                break
            # Nothing to hand over yet: the consumer waits. Once this wait, or the
            # waits since the last start, are as long as a start, start the next
            # worker; a start with still nothing to hand over after it was time
            # spent waiting anyway, so the rest follow at once (pool.py).
            pending = pool.pending
            if pending:
                waited = max(now - called, pool.waited_s)
                if waited >= pool.start_s:
                    pool.start_pending()
                    continue
                remaining = min(remaining, pool.start_s - waited)
            self._done.extend(pool.receive(self._run, remaining))
            if pending:
                pool.waited_s += time.monotonic() - now
            if self._done:
                return self._done.popleft()
        return None

    def hand_over(self) -> list[Task]:
        """Send no new task; return those not sent (``handoff.py``). Tasks sent
        still report through ``get``."""
        rest = list(self._todo)
        self._todo.clear()
        return rest

    def settled(self) -> bool:
        """After ``hand_over``: every task sent has been answered and taken."""
        return not self._done and not self._pool.in_flight(self._run)

    def resize(self, budget_delta: int) -> None:
        """Tokens added (or, negative, withdrawn as the consumer returns them)."""
        self._budget += budget_delta
        self._tokens += budget_delta
        if budget_delta > 0:
            self._pump()

    def release(self) -> None:
        self._tokens += 1
        if not self._todo:
            return
        # Cheap batches: let half the budget gather, then send it in chunks. Workers
        # still hold the other half, and get() sends whatever it can before waiting.
        if self._pool.produce_ema_s >= _CHEAP_S or self._tokens * 2 >= self._budget:
            self._pump()

    def check(self) -> None:
        self._pool.check()

    def waiting(self) -> int:
        return len(self._done)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._todo.clear()
        self._done.clear()  # drops their leases: the slots go back to the ring
        self._pool.cancel_below(self._run + 1)

    def join(self, timeout_s: float) -> bool:
        pool = self._pool
        deadline = time.monotonic() + timeout_s
        while pool.in_flight(self._run) and pool.failure is None and not pool.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool.receive(self._run, remaining)
        return pool.closed or not pool.in_flight(self._run)


class ProcessBackend:
    """Keeps one worker pool for the loader's life (restarted after a crash).

    Raises:
        ConfigError: not on Linux, or a start method that re-imports the main
            script while that script starts the loader unguarded (``start.py``).
    """

    def __init__(
        self,
        fetcher: Fetcher,
        opts: LoaderOptions,
        budget: int,
        name: str,
        limit: int | None = None,
    ) -> None:
        if not sys.platform.startswith("linux"):
            raise ConfigError(
                "use_multiprocessing=True needs Linux in this version of stoker "
                f"(this is {sys.platform}); use threads (use_multiprocessing=False)"
            )
        self.method = opts.start_method or default_start_method()
        check_main_guard(self.method)
        self._fetcher = fetcher
        self._opts = opts
        self._budget = budget
        self._name = name
        self.workers = opts.workers
        self._limit = max(limit or 0, opts.workers)  # room for workers="auto"
        self._run: ProcessEpochRun | None = None
        self._pool: WorkerPool | None = None
        self._sync: SourceSync | None = None
        self._runs = itertools.count(1)
        self._generation = 0
        self._closed = False
        self.update_s: collections.deque[float] = collections.deque(
            maxlen=_UPDATES_KEPT
        )
        self.update_bytes: collections.deque[int] = collections.deque(
            maxlen=_UPDATES_KEPT
        )

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers (empty before the first epoch)."""
        return [] if self._pool is None else self._pool.pids

    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        if self._closed:
            raise LoaderClosed(f"{self._name}: the process backend is closed")
        pool = self._pool
        if pool is not None and (pool.failure is not None or pool.closed):
            pool.shutdown(_RESTART_TIMEOUT_S)
            pool = self._pool = None
        if pool is None:
            pool = WorkerPool(
                self._fetcher,
                self._opts,
                self._budget,
                self._name,
                method=self.method,
                seed=self._fetcher.seed,
                generation=self._generation,
                limit=self._limit,
            )
            pool.workers = self.workers
            self._generation += 1
            self._pool = pool
            self._sync = SourceSync(self._fetcher.source)
        else:
            # A worker that died between epochs is reported now, before a survivor
            # could quietly take all the work (results ready would skip the poll
            # that sees its sentinel); the epoch after starts a fresh pool.
            pool.check()
            self._update(pool)
        run = ProcessEpochRun(pool, next(self._runs), epoch, tasks, self._budget)
        self._run = run
        return run

    def start_all(self) -> None:
        """Start every worker in force now, not as the consumer comes to wait.

        For a move from threads in the middle of an epoch (``handoff.py``): the
        loop then has the threads' last batches to take while the forks run, and
        a worker left to start later would start in the next epoch (measured on
        the cpu workload: its second process started at epoch 2, which ran at 0.85
        of a pool that had both).
        """
        pool = self._pool
        while pool is not None and pool.start_pending():
            pass

    def resize(self, workers: int, budget: int) -> None:
        """Run up to ``workers`` processes with ``budget`` tokens from now on.

        More workers start through the pool's background path (the next whenever
        the consumer would wait), up to the room made at the start (``limit``).
        Fewer: the budget shrinks, so fewer tasks are out at once; the processes
        past the count stay started but idle (they block on the empty task socket).
        """
        workers = min(workers, self._limit)
        old_budget, self._budget = self._budget, budget
        self.workers = workers
        if self._pool is not None:
            self._pool.workers = workers
            self._pool.ring.set_cap(budget + 1)  # as at the pool's start
        if self._run is not None:
            self._run.resize(budget - old_budget)

    def _update(self, pool: WorkerPool) -> None:
        assert self._sync is not None
        t0 = time.perf_counter()
        payload = self._sync.changes(self._fetcher.source)
        if payload is not None:
            pool.send_update(payload)
            self.update_bytes.append(len(payload))
        self.update_s.append(time.perf_counter() - t0)

    def close(self, timeout_s: float) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(timeout_s)
