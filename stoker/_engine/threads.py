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
        self._next_task = iter(tasks).__next__
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(budget):
            self._tokens.put(None)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stopped = False
        self._workers = workers
        self._busy = workers  # workers still inside work(); guarded by _idle
        self._idle = threading.Condition()

    def work(self, w: int) -> None:
        """Worker ``w``'s loop for this epoch; returns when no task is left."""
        take_token = self._tokens.get
        put = self._results.put
        next_task = self._next_task
        fetch = self._fetch
        epoch = self._epoch
        clock = time.perf_counter
        cpu_clock = time.thread_time
        try:
            while True:
                try:
                    take_token(timeout=_POLL_S)
                except queue.Empty:
                    if self._stopped:
                        return
                    continue
                if self._stopped:
                    return
                try:
                    pos, key = next_task()
                except StopIteration:
                    return
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
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def get(self, timeout_s: float) -> Result | None:
        try:
            return self._results.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def release(self) -> None:
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
    """A pool of ``workers`` threads, started at the first epoch, kept until close."""

    def __init__(self, fetch: Fetcher, workers: int, budget: int, name: str) -> None:
        self._fetch = fetch
        self._workers = workers
        self._budget = budget
        self._name = name
        self._jobs: list[queue.SimpleQueue[ThreadEpochRun | None]] = []
        self._threads: list[threading.Thread] = []

    def _start_threads(self) -> None:
        for w in range(self._workers):
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

    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        if not self._threads:
            self._start_threads()
        run = ThreadEpochRun(self._fetch, epoch, tasks, self._workers, self._budget)
        for jobs in self._jobs:
            jobs.put(run)
        return run

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
