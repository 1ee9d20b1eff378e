"""Generator sources: per-worker streams interleaved in a fixed order.

``Loader.from_generator(factory)`` calls ``factory(worker, workers)`` once per worker
thread; the streams must be disjoint. Global stream position ``g`` always comes from
worker ``g % workers`` (its ``g // workers``-th item), so the interleaving does not
depend on timing. Worker ``w`` may produce position ``g`` only while
``g < delivered + budget``: at most ``budget`` items exist at once, and the producer of
the position the consumer waits for is never blocked, so the bound cannot deadlock.

Items produced but not delivered when an epoch is cut short are kept and delivered
first in the next epoch: a generator cannot be rewound, so dropping them would lose
data. A plain generator object is one stream: it runs on one worker, because the
generator's own code is what takes the time and Python can resume a generator on only
one thread at a time (a lock around ``next()`` would serialise the workers anyway).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from stoker._engine.fetch import nbytes
from stoker._engine.run import Result
from stoker._engine.threads import _POLL_S
from stoker._errors import LoaderClosed, StokerError

_EXHAUSTED = (
    "the generator given to Loader.from_generator is exhausted; pass a factory (a "
    "function returning a new generator) so stoker can start another pass, or lower "
    "steps_per_epoch or the number of epochs"
)


class GeneratorExhausted(StokerError):
    """A generator source ran out before the epoch's ``steps_per_epoch``."""


class Streams:
    """The per-worker iterators of a generator loader, kept across epochs."""

    def __init__(
        self, factory: Callable[[int, int], Any] | None, single: Any, workers: int
    ):
        self.factory = factory
        self.workers = workers
        self._iters: list[Iterator[Any] | None] = [None] * workers
        if single is not None:
            self._iters[0] = iter(single)
        self.next_g = list(range(workers))  # next stream position each worker makes
        self.pending: dict[int, Result] = {}  # produced, not yet delivered
        self.skip = [0] * workers  # items to discard first (resume)

    def next_item(self, w: int) -> Any:
        """The next item of worker ``w``'s stream, starting a new pass if it ended."""
        it = self._iters[w]
        fresh = it is None
        if it is None:
            if self.factory is None:
                raise GeneratorExhausted(_EXHAUSTED)
            it = self._iters[w] = iter(self.factory(w, self.workers))
        while self.skip[w]:
            next(it, None)
            self.skip[w] -= 1
        try:
            return next(it)
        except StopIteration:
            self._iters[w] = None
            if self.factory is None:
                raise GeneratorExhausted(_EXHAUSTED) from None
            if fresh:
                raise GeneratorExhausted(
                    f"factory({w}, {self.workers}) returned a generator that yields "
                    "nothing; every worker's stream must yield at least one item"
                ) from None
            return self.next_item(w)


class GeneratorEpochRun:
    """One epoch of stream positions ``[start, end)``; ``first`` is the first one not
    yet delivered (later than ``start`` on a resume)."""

    def __init__(
        self, streams: Streams, start: int, first: int, end: int, budget: int, name: str
    ) -> None:
        self._streams = streams
        self._start = start
        self._end = end
        self._budget = budget
        self._delivered = first
        self._cond = threading.Condition()
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stopped = False
        for g in sorted(streams.pending):
            if g < end:
                r = streams.pending.pop(g)
                self._results.put(r._replace(pos=g - start))
        self._threads = [
            threading.Thread(
                target=self._work, args=(w,), name=f"{name}-gen-{w}", daemon=True
            )
            for w in range(streams.workers)
        ]
        for t in self._threads:
            t.start()

    def _work(self, w: int) -> None:
        streams = self._streams
        while True:
            g = streams.next_g[w]
            if g >= self._end:
                return
            with self._cond:
                while not self._stopped and g >= self._delivered + self._budget:
                    self._cond.wait(_POLL_S)
                if self._stopped:
                    return
            t0 = time.perf_counter()
            c0 = time.thread_time()
            try:
                item = streams.next_item(w)
            except BaseException as exc:
                exc.add_note(
                    f"stoker: raised by generator worker {w} (stream item {g})"
                )
                dt = time.perf_counter() - t0
                self._results.put(
                    Result(g - self._start, None, dt, math.nan, 0, exc, w, g)
                )
                return
            streams.next_g[w] = g + streams.workers
            self._results.put(
                Result(
                    g - self._start,
                    item,
                    time.perf_counter() - t0,
                    time.thread_time() - c0,
                    nbytes(item),
                    None,
                    w,
                    g,
                )
            )

    def get(self, timeout_s: float) -> Result | None:
        try:
            return self._results.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def release(self) -> None:
        with self._cond:
            self._delivered += 1
            self._cond.notify_all()

    def check(self) -> None:
        if self._stopped:  # only close() stops a run while the consumer waits on it
            raise LoaderClosed("the loader was closed while an epoch was running")

    def waiting(self) -> int:
        return self._results.qsize()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        # Whatever was produced and not delivered comes first next epoch.
        while True:
            try:
                r = self._results.get_nowait()
            except queue.Empty:
                break
            if r.error is None:
                self._streams.pending[r.pos + self._start] = r
        return not any(t.is_alive() for t in self._threads)
