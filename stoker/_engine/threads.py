"""Thread workers: the backend for I/O-bound sources.

Threads of one epoch (``workers`` of them, started when iteration starts) share an
iterator over the epoch's tasks. Before taking a task a worker takes a token from a
budget of ``max_queue_size + workers`` tokens; the consumer returns one for every
batch it takes. So at most ``max_queue_size + workers`` batches exist at once,
finished or in flight, whatever the order in which they complete.

Every hand-off is a C-level ``SimpleQueue`` or a list iterator (atomic under the GIL),
which keeps the per-batch cost to a few microseconds. Threads are daemons and poll a
stop flag every ``_POLL_S``; ``stop()`` also hands each one a token so an idle worker
wakes at once.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from typing import Any

from stoker._engine.fetch import Fetcher, nbytes
from stoker._engine.run import EpochRun, Result, Task

_log = logging.getLogger("stoker")
# How often an idle worker re-checks the stop flag; a stop also wakes it directly.
_POLL_S = 0.1


def add_note(exc: BaseException, key: Any, pos: int, epoch: int, worker: str) -> None:
    """Name the failing batch on the user's exception (once)."""
    where = (
        f"source[{key}]" if isinstance(key, int) else f"the batch of samples {key!r}"
    )
    note = f"stoker: raised by {where} (batch {pos} of epoch {epoch}, {worker})"
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


class ThreadEpochRun:
    """One epoch on a pool of threads (see the module docstring for the bound)."""

    def __init__(
        self,
        fetch: Fetcher,
        epoch: int,
        tasks: list[Task],
        workers: int,
        budget: int,
        name: str,
    ) -> None:
        self._fetch = fetch
        self._epoch = epoch
        self._next_task = iter(tasks).__next__
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(budget):
            self._tokens.put(None)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stopped = False
        count = max(1, min(workers, len(tasks)))
        self._threads = [
            threading.Thread(
                target=self._work, args=(w,), name=f"{name}-worker-{w}", daemon=True
            )
            for w in range(count)
        ]
        for t in self._threads:
            t.start()

    def _work(self, w: int) -> None:
        take_token = self._tokens.get
        put = self._results.put
        next_task = self._next_task
        fetch = self._fetch
        epoch = self._epoch
        clock = time.perf_counter
        cpu_clock = time.thread_time
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
            put(
                Result(pos, batch, clock() - t0, cpu_clock() - c0, size, None, w, index)
            )

    def get(self, timeout_s: float) -> Result | None:
        try:
            return self._results.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def release(self) -> None:
        self._tokens.put(None)

    def check(self) -> None:
        return None  # a thread cannot die without its exception reaching us

    def waiting(self) -> int:
        return self._results.qsize()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            for _ in self._threads:
                self._tokens.put(None)

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            _log.warning(
                "stoker: %d worker thread(s) still inside source[i] after %.1f s: %s",
                len(alive),
                timeout_s,
                ", ".join(alive),
            )
        return not alive


class ThreadBackend:
    """Starts a fresh set of threads per epoch; nothing to keep between epochs."""

    def __init__(self, fetch: Fetcher, workers: int, budget: int, name: str) -> None:
        self._fetch = fetch
        self._workers = workers
        self._budget = budget
        self._name = name

    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        return ThreadEpochRun(
            self._fetch, epoch, tasks, self._workers, self._budget, self._name
        )

    def epoch_boundary(self) -> None:
        return None  # threads read the source object itself: nothing to resync

    def close(self, timeout_s: float) -> None:
        return None  # runs are stopped and joined by the loader
