"""Process workers: the backend for CPU-bound Python sources.

Workers are started once per loader, on the first epoch, and kept until ``close()``
(``pool.py``); with ``spawn``/``forkserver`` the source is pickled once and crosses
once. Each epoch is a :class:`ProcessEpochRun` that feeds the pool's shared task
socket, all on the consumer's thread (no helper thread to contend for the GIL):

* Bound: a task is sent only with a token; there are ``max_queue_size + workers``
  tokens and the consumer returns one per batch it takes (``release``), so at most
  that many batches exist at once, in flight, finished or in the reorder buffer.
* Memory: each task also takes a slot of the shared-memory ring (``shm.py``, which
  states the ownership rule); the worker writes the batch there and the consumer
  gets zero-copy views. When every slot is lent out, the run waits for one (a result
  always comes back); when the consumer itself holds every slot, the task gets a
  one-off segment instead, so keeping batches never deadlocks.
* Failures: a worker's exception keeps its type (``tracebacks.py``); a worker that
  dies raises ``WorkerCrashed`` from the same wait (``pool.py``); the next epoch then
  starts a fresh pool.
* Source state: before every epoch after the first, attributes of the source that
  changed in the consumer (``on_epoch_end`` reshuffling its indices, say) are sent to
  the workers (``resync.py``); ``update_s`` records what that cost.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections import deque
from typing import Any

from stoker._engine import codec, tracebacks
from stoker._engine.fetch import Fetcher
from stoker._engine.plan import Key
from stoker._engine.pool import WorkerPool
from stoker._engine.resync import SourceSync
from stoker._engine.run import EpochRun, Result, Task
from stoker._engine.shm import Segment, Slot
from stoker._engine.threads import add_note
from stoker._errors import ConfigError, LoaderClosed, SerializationError
from stoker._options import LoaderOptions

# Shutting down a broken pool before starting a fresh one.
_RESTART_TIMEOUT_S = 2.0
# Batches that take less than this to produce are sent up to _MAX_CHUNK per message:
# below it, waking a worker costs as much as the batch itself.
_CHEAP_S = 0.0005
_MAX_CHUNK = 8


class ProcessEpochRun:
    """One epoch on a worker pool (see the module docstring for the bound)."""

    def __init__(
        self, pool: WorkerPool, run: int, epoch: int, tasks: list[Task], budget: int
    ) -> None:
        self._pool = pool
        self._ring = pool.ring
        self.run = run
        self.epoch = epoch
        self._todo: deque[Task] = deque(tasks)
        self._budget = budget
        self._tokens = budget
        self._lent: dict[int, tuple[Key, Slot]] = {}  # in flight: pos -> (key, slot)
        self._done: deque[Result] = deque()
        self._stopped = False
        pool.runs[run] = self
        self._pump()

    def _pump(self) -> None:
        pool = self._pool
        todo = self._todo
        ring = self._ring
        while todo and self._tokens > 0 and not self._stopped:
            if pool.failure is not None or pool.closed:
                return
            # Cheap batches travel in chunks: one message and one wake-up for several.
            limit = 1
            if pool.produce_ema_s < _CHEAP_S:
                limit = min(_MAX_CHUNK, -(-self._tokens // pool.workers))
            chunk: list[tuple[Any, ...]] = []
            while todo and self._tokens > 0 and len(chunk) < limit:
                slot = ring.take(self._tokens < self._budget)
                if slot is None:
                    break  # every slot is lent out: one comes back with a result
                pos, key = todo.popleft()
                self._tokens -= 1
                self._lent[pos] = (key, slot)
                chunk.append(
                    (self.run, self.epoch, pos, key, slot.offset, slot.size, pool.sync)
                )
            if not chunk:
                return
            if not pool.send_tasks(chunk):
                for task in reversed(chunk):
                    pos, key = task[2], task[3]
                    slot = self._lent.pop(pos)[1]
                    ring.settle(slot)
                    ring.give_back(slot)
                    todo.appendleft((pos, key))
                    self._tokens += 1
                return

    def task_of(self, pos: int) -> tuple[Any, int] | None:
        """``(key, epoch)`` of an in-flight position (for crash reports)."""
        lent = self._lent.get(pos)
        return None if lent is None else (lent[0], self.epoch)

    def on_message(self, msg: tuple[Any, ...], fds: list[int]) -> None:
        """A worker's reply for one of this run's tasks (``worker.py`` lists kinds)."""
        kind, _, pos, w = msg[:4]
        key, slot = self._lent.pop(pos)
        ring = self._ring
        ring.settle(slot)
        if self._stopped or kind == "skip":
            for fd in fds:
                os.close(fd)
            ring.give_back(slot)
            if self._stopped and not self._lent:
                self._pool.runs.pop(self.run, None)
            return
        one_off = None
        if kind == "ok" and msg[10]:
            one_off = Segment(fds.pop(0), msg[10], own_fd=False)
        for fd in fds:
            os.close(fd)  # none expected
        index = key if isinstance(key, int) else pos
        if kind == "ok":
            _, _, _, _, produce_s, cpu_s, nbytes, stream, places, need, _ = msg
            self._pool.produce_ema_s += 0.1 * (produce_s - self._pool.produce_ema_s)
            ring.grow(need)
            try:
                batch = codec.decode(stream, places, ring, slot, one_off)
            except Exception as exc:
                error = SerializationError(
                    f"batch {pos} of epoch {self.epoch} (source index {index}) crossed "
                    f"from process worker {w} but cannot be unpickled here: {exc}"
                )
                error.__cause__ = exc
                self._done.append(
                    Result(pos, None, produce_s, cpu_s, 0, error, w, index)
                )
                return
            self._done.append(
                Result(pos, batch, produce_s, cpu_s, nbytes, None, w, index)
            )
            return
        ring.give_back(slot)
        _, _, _, _, produce_s, how, packed = msg
        raised = tracebacks.unpack(packed)
        if how == "raised":
            add_note(raised, key, pos, self.epoch, f"process worker {w}")
        self._done.append(Result(pos, None, produce_s, math.nan, 0, raised, w, index))

    # -- EpochRun -----------------------------------------------------------------
    def get(self, timeout_s: float) -> Result | None:
        if self._done:
            return self._done.popleft()
        pool = self._pool
        deadline = time.monotonic() + timeout_s
        while pool.failure is None and not pool.closed:
            self._pump()
            pool.receive(max(0.0, deadline - time.monotonic()))
            if self._done:
                return self._done.popleft()
            if time.monotonic() >= deadline:
                break
        return None

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
        self._pool.cancel_below(self.run + 1)
        if not self._lent:
            self._pool.runs.pop(self.run, None)

    def join(self, timeout_s: float) -> bool:
        pool = self._pool
        deadline = time.monotonic() + timeout_s
        while self._lent and pool.failure is None and not pool.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool.receive(remaining)
        if not self._lent:
            pool.runs.pop(self.run, None)
        return not self._lent


class ProcessBackend:
    """Keeps one worker pool for the loader's life (restarted after a crash)."""

    def __init__(
        self, fetcher: Fetcher, opts: LoaderOptions, budget: int, name: str
    ) -> None:
        if not sys.platform.startswith("linux"):
            raise ConfigError(
                "use_multiprocessing=True needs Linux in this version of stoker "
                f"(this is {sys.platform}); use threads (use_multiprocessing=False)"
            )
        self._fetcher = fetcher
        self._opts = opts
        self._budget = budget
        self._name = name
        self._pool: WorkerPool | None = None
        self._sync: SourceSync | None = None
        self._runs = itertools.count(1)
        self._closed = False
        self.update_s: list[float] = []  # seconds each source update took
        self.update_bytes: list[int] = []

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
            pool = WorkerPool(self._fetcher, self._opts, self._budget, self._name)
            self._pool = pool
            self._sync = SourceSync(self._fetcher.source)
        else:
            # A worker that died between epochs is reported now, before a survivor
            # could quietly take all the work (results ready would skip the poll
            # that sees its sentinel); the epoch after starts a fresh pool.
            pool.check()
            self._update(pool)
        return ProcessEpochRun(pool, next(self._runs), epoch, tasks, self._budget)

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
