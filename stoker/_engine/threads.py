"""Thread workers: the backend for I/O-bound sources.

A loader's worker threads start at its first iteration and serve every epoch until
``close()``, so later epochs start at once. For each epoch the threads share an
iterator over its tasks. Before taking a task a worker takes a token from a budget of
``max_queue_size + workers`` tokens; the consumer returns one for every batch it
takes. So at most ``max_queue_size + workers`` batches exist at once, finished or in
flight, whatever the order in which they complete.

Every hand-off is a C-level ``SimpleQueue`` or a list iterator (atomic under the GIL),
which keeps the per-batch cost to a few microseconds. Threads are daemons; an idle
worker blocks on its job queue, a working one polls the run's stop flag every
``_POLL_S``, and ``stop()`` hands each worker a token so that it wakes at once.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time

from stoker._engine.fetch import Fetcher
from stoker._engine.run import EpochRun, Result, Task, add_note
from stoker._errors import LoaderClosed
from stoker._tree import nbytes

_log = logging.getLogger("stoker")
# How often a waiting worker re-checks the stop flag; a stop also wakes it directly.
_POLL_S = 0.1
# How often an idle worker between epochs checks that the program is still running.
_IDLE_POLL_S = 1.0


class ThreadEpochRun:
    """One epoch on the pool's threads (see the module docstring for the bound)."""

    def __init__(
        self, fetch: Fetcher, epoch: int, tasks: list[Task], workers: int, budget: int
    ) -> None:
        self._fetch = fetch
        self._epoch = epoch
        self._tasks = iter(tasks)
        self._next_task = self._tasks.__next__
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(budget):
            self._tokens.put(None)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stopped = False
        self._workers = workers
        # Workers with an index at or past the limit leave the run (autotuning).
        self.limit = workers
        self._excess = 0  # tokens to swallow after a smaller budget (consumer only)
        self._inside: set[int] = set()  # workers handed this run; guarded by _idle
        self._busy = 0  # workers still inside work(); guarded by _idle
        self._idle = threading.Condition()

    def enter(self, w: int) -> bool:
        """Count worker ``w`` in before it is handed the run; False if it is in."""
        with self._idle:
            if w in self._inside or self._stopped:
                return False
            self._inside.add(w)
            self._busy += 1
            return True

    def _leave(self, w: int) -> None:
        with self._idle:
            self._inside.discard(w)
            self._busy -= 1
            self._idle.notify_all()

    def resize(self, workers: int, budget_delta: int) -> None:
        """A new worker limit, and tokens added (or, negative, withdrawn)."""
        self.limit = workers
        self._workers = max(self._workers, workers)
        if budget_delta >= 0:
            take = min(budget_delta, self._excess)
            self._excess -= take
            for _ in range(budget_delta - take):
                self._tokens.put(None)
        else:
            self._excess -= budget_delta  # swallowed as the consumer returns them

    def work(self, w: int) -> None:
        """Worker ``w``'s loop for this epoch; returns when no task is left, or when
        the limit retires it (decided under the lock that ``enter`` takes, so a
        worker retired and wanted again at once is never lost)."""
        left = False
        try:
            while not self._work(w):
                with self._idle:  # an RLock: _leave takes it again
                    if w >= self.limit:
                        self._leave(w)
                        left = True
                        return
        finally:
            if not left:
                self._leave(w)

    def _work(self, w: int) -> bool:
        """The task loop: True when the run is over for everyone, False if retired."""
        take_token = self._tokens.get
        put = self._results.put
        next_task = self._next_task
        fetch = self._fetch
        epoch = self._epoch
        clock = time.perf_counter
        cpu_clock = time.thread_time
        while w < self.limit:
            try:
                take_token(timeout=_POLL_S)
            except queue.Empty:
                if self._stopped:
                    return True
                continue
            if self._stopped:
                return True
            if w >= self.limit:  # retired while waiting: the token is another's
                self._tokens.put(None)
                return False
            try:
                pos, key = next_task()
            except StopIteration:
                return True
            index = key if isinstance(key, int) else pos
            t0 = clock()
            c0 = cpu_clock()
            try:
                batch = fetch(key, epoch)
            except BaseException as exc:  # crosses to the consumer, which re-raises
                add_note(exc, key, pos, epoch, f"thread worker {w}")
                put(Result(pos, None, clock() - t0, math.nan, 0, exc, w, index))
                continue
            size = nbytes(batch)
            cpu = cpu_clock() - c0
            put(Result(pos, batch, clock() - t0, cpu, size, None, w, index))
        return False

    def hand_over(self) -> list[Task]:
        """Start no new task; return those not started (``handoff.py``).

        ``list()`` empties the shared iterator in one C call, which no worker can
        interleave with; a worker that then asks for a task finds none and leaves,
        and the tokens put here wake those that wait for one. Tasks already
        started still report through ``get``.
        """
        rest = list(self._tasks)
        for _ in range(self._workers):
            self._tokens.put(None)
        return rest

    def settled(self) -> bool:
        """After ``hand_over``: every started task has reported (``handoff.py``).

        A worker puts its last result before it leaves, so no worker inside and an
        empty queue (read in that order) mean nothing more will come."""
        with self._idle:
            busy = self._busy
        return busy == 0 and self._results.empty()

    def get(self, timeout_s: float) -> Result | None:
        try:
            return self._results.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def release(self) -> None:
        if self._excess:
            self._excess -= 1  # a smaller budget: this token is withdrawn
            return
        self._tokens.put(None)

    def check(self) -> None:
        # A thread cannot die without its exception reaching us; only close() stops
        # a run while the consumer still waits on it.
        if self._stopped:
            raise LoaderClosed("the loader was closed while an epoch was running")

    def waiting(self) -> int:
        return self._results.qsize()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            for _ in range(self._workers):
                self._tokens.put(None)

    def join(self, timeout_s: float) -> bool:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout_s)
            busy = self._busy
        if busy:
            _log.warning(
                "stoker: %d worker thread(s) still inside source[i] after %.1f s",
                busy,
                timeout_s,
            )
        return not busy


class ThreadBackend:
    """A pool of ``workers`` threads, started at the first epoch, kept until close.

    ``resize`` (the autotuner, between batches, on the consumer's thread) changes the
    count: new threads join the current run's shared task iterator at once; retired
    ones leave it after their batch and idle until wanted again. The budget moves
    with the count, so the bound stays ``max_queue_size + workers`` tokens.
    """

    def __init__(self, fetch: Fetcher, workers: int, budget: int, name: str) -> None:
        self._fetch = fetch
        self._workers = workers
        self._budget = budget
        self._name = name
        self._jobs: list[queue.SimpleQueue[ThreadEpochRun | None]] = []
        self._threads: list[threading.Thread] = []
        self._run: ThreadEpochRun | None = None

    @property
    def workers(self) -> int:
        """The worker count in force."""
        return self._workers

    def _start_threads(self, count: int) -> None:
        for w in range(len(self._threads), count):
            jobs: queue.SimpleQueue[ThreadEpochRun | None] = queue.SimpleQueue()
            t = threading.Thread(
                target=self._serve,
                args=(w, jobs),
                name=f"{self._name}-worker-{w}",
                daemon=True,
            )
            self._jobs.append(jobs)
            self._threads.append(t)
            t.start()

    @staticmethod
    def _serve(w: int, jobs: queue.SimpleQueue[ThreadEpochRun | None]) -> None:
        while True:
            try:
                run = jobs.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                if threading.main_thread().is_alive():
                    continue
                return  # the interpreter is shutting down without close()
            if run is None:
                return
            run.work(w)

    def _hand(self, run: ThreadEpochRun, workers: range) -> None:
        for w in workers:
            if run.enter(w):
                self._jobs[w].put(run)

    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        self._start_threads(self._workers)
        run = ThreadEpochRun(self._fetch, epoch, tasks, self._workers, self._budget)
        self._run = run
        self._hand(run, range(self._workers))
        return run

    def resize(self, workers: int, budget: int) -> None:
        """Run ``workers`` threads with ``budget`` tokens from now on (class doc)."""
        old_budget, self._budget = self._budget, budget
        self._workers = workers
        run = self._run
        if run is None:
            return
        run.resize(workers, budget - old_budget)
        if self._threads:
            self._start_threads(workers)
            self._hand(run, range(workers))

    def close(self, timeout_s: float) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            _log.warning(
                "stoker: worker threads still inside source[i] at close: %s",
                ", ".join(alive),
            )
        self._jobs = []
        self._threads = []
