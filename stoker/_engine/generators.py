"""Generator sources: per-worker streams, merged round-robin, as torch does.

``Loader.from_generator(factory)`` calls ``factory(worker, workers)`` in each worker
thread for each *pass*; the streams must be disjoint (shards of the data). The rule,
the one torch's DataLoader gives an ``IterableDataset`` with uneven shards:

1. A pass takes one item from each stream in turn, worker 0 first. A stream that
   ends drops out of the turn; the others go on. The pass ends when every stream
   has ended. So every item of every stream is delivered once per pass, however
   uneven the streams, and none is repeated within a pass.
2. Epochs are windows of ``steps_per_epoch`` items over the sequence of passes: an
   epoch continues where the last one stopped, and when a pass ends mid-epoch, the
   next pass starts (``factory`` is called again for every worker). An item is
   repeated in one epoch only if the epoch is longer than a whole pass, and then
   only after every item of the pass was delivered.
3. Which item comes when depends only on the streams' contents, never on timing:
   the merge happens on the consumer's side, in the fixed turn.
4. Bound: each worker may run ``ceil(budget / workers)`` items ahead of the merge
   (its own queue); the merge always waits on one queue whose producer is free to
   fill it, so the bound cannot deadlock. Producers run ahead across epoch
   boundaries, within that bound; nothing produced is ever dropped.
5. Resume replays: the state holds the pass number, the turn, which streams have
   ended and how many items each delivered in this pass; a new loader calls the
   factory again and skips those items, so the factory must give the same items
   each time it is called.

A plain generator object is one stream: it runs on one worker (a generator can be
resumed on one thread at a time, so more workers could not make it faster), cannot
start a second pass (``GeneratorExhausted``) and cannot resume.
"""

from __future__ import annotations

import inspect
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from stoker._engine.run import EpochRun, Result
from stoker._errors import ConfigError, GeneratorExhausted, LoaderClosed
from stoker._tree import nbytes

# How often a blocked producer re-checks the stop flag.
_POLL_S = 0.1
_EXHAUSTED = (
    "the generator given to Loader.from_generator is exhausted; pass a factory (a "
    "function returning a new generator) so stoker can start another pass, or lower "
    "steps_per_epoch or the number of epochs"
)
_ITEM, _END, _GONE = 0, 1, 2  # an item; this stream's pass ended; no more passes


def streams_of(
    factory: Any, steps_per_epoch: int | None, workers: int
) -> tuple[Callable[[int, int], Any] | None, Any, int]:
    """``(factory or None, single generator or None, workers)`` for
    ``Loader.from_generator``'s arguments, or ``ConfigError`` saying the fix."""
    if steps_per_epoch is None:
        raise ConfigError(
            "from_generator needs steps_per_epoch: a generator has no length, so "
            "stoker must be told how many items make an epoch"
        )
    if inspect.isgenerator(factory) or hasattr(factory, "__next__"):
        return None, factory, 1  # one generator runs on one thread (module docstring)
    if not callable(factory):
        raise ConfigError(
            f"from_generator got {type(factory).__name__}: pass a generator, or a "
            "function called as factory(worker_index, num_workers) that returns one"
        )
    return factory, None, workers


class _Out(NamedTuple):
    kind: int
    pass_no: int
    result: Result | None


class _Merge:
    """The consumer's place in the round-robin (rule 1); all of it is resumable."""

    def __init__(self, workers: int) -> None:
        self.pass_no = 0
        self.turn = 0
        self.live = [True] * workers
        self.taken = [0] * workers
        self.items = 0  # items delivered in this pass

    def advance(self, after: int) -> None:
        w = len(self.live)
        for step in range(1, w + 1):
            nxt = (after + step) % w
            if self.live[nxt]:
                self.turn = nxt
                return

    def new_pass(self) -> None:
        self.pass_no += 1
        self.turn = 0
        self.live = [True] * len(self.live)
        self.taken = [0] * len(self.live)
        self.items = 0


class StreamFeed:
    """A generator source: producer threads, one per stream, and the merge."""

    kind = "generator"

    def __init__(
        self,
        factory: Callable[[int, int], Any] | None,
        single: Any,
        workers: int,
        steps_per_epoch: int,
        budget: int,
        name: str,
    ) -> None:
        self.source = factory if factory is not None else single
        self._factory = factory
        self._single = single
        self._workers = workers
        self._steps = steps_per_epoch
        self._name = name
        self._quota = max(1, math.ceil(budget / workers))
        self._merge = _Merge(workers)
        self._queues: list[queue.Queue[_Out]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._skip = [0] * workers  # resume: items to skip in each first stream
        self._first_pass = [0] * workers  # resume: the pass each producer starts at

    # -- producers ------------------------------------------------------------------
    def _start(self) -> None:
        for w in range(self._workers):
            q: queue.Queue[_Out] = queue.Queue(maxsize=self._quota)
            t = threading.Thread(
                target=self._produce, args=(w, q), name=f"{self._name}-gen-{w}",
                daemon=True,
            )  # fmt: skip
            self._queues.append(q)
            self._threads.append(t)
        for t in self._threads:
            t.start()

    def _put(self, q: queue.Queue[_Out], out: _Out) -> bool:
        while not self._stop.is_set():
            try:
                q.put(out, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _stream(self, w: int) -> Iterator[Any] | None:
        if self._factory is None:
            single, self._single = self._single, None
            return None if single is None else iter(single)
        return iter(self._factory(w, self._workers))  # type: ignore[no-any-return]

    def _produce(self, w: int, q: queue.Queue[_Out]) -> None:
        pass_no = self._first_pass[w]
        skip = self._skip[w]
        clock, cpu_clock = time.perf_counter, time.thread_time
        while not self._stop.is_set():
            try:
                it = self._stream(w)
            except BaseException as exc:
                exc.add_note(f"stoker: raised by factory({w}, {self._workers})")
                self._put(
                    q,
                    _Out(_ITEM, pass_no, Result(0, None, 0.0, math.nan, 0, exc, w, 0)),
                )
                it = iter(())
            if it is None:
                self._put(q, _Out(_GONE, pass_no, None))
                return
            k = 0
            while not self._stop.is_set():
                t0, c0 = clock(), cpu_clock()
                try:
                    item = next(it)
                except StopIteration:
                    break
                except BaseException as exc:  # crosses to the consumer, re-raised there
                    exc.add_note(
                        f"stoker: raised by generator worker {w} (item {k} of its "
                        f"stream in pass {pass_no})"
                    )
                    result = Result(0, None, clock() - t0, math.nan, 0, exc, w, k)
                    self._put(q, _Out(_ITEM, pass_no, result))
                    break  # a generator that raised cannot continue: its pass ends
                if skip:
                    skip -= 1
                    k += 1
                    continue
                dt, cpu = clock() - t0, cpu_clock() - c0
                result = Result(0, item, dt, cpu, nbytes(item), None, w, k)
                if not self._put(q, _Out(_ITEM, pass_no, result)):
                    return
                k += 1
            skip = 0
            if not self._put(q, _Out(_END, pass_no, None)):
                return
            pass_no += 1

    # -- the merge (consumer's thread) ------------------------------------------------
    def next_result(self, timeout_s: float) -> Result | None:
        """The next item in the merged order, or None if none came in time."""
        m = self._merge
        deadline = time.monotonic() + timeout_s
        while True:
            if not any(m.live):
                if m.items == 0:
                    raise GeneratorExhausted(
                        f"every stream of the {self._workers} workers ended without "
                        "yielding an item in a whole pass; factory(worker, workers) "
                        "must yield the data (check its sharding)"
                    )
                m.new_pass()
            w = m.turn
            try:
                out = self._queues[w].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if out.kind == _GONE:
                raise GeneratorExhausted(_EXHAUSTED)
            if out.kind == _END:
                m.live[w] = False
                m.advance(w)
                continue
            assert out.result is not None
            m.taken[w] += 1
            m.items += 1
            m.advance(w)
            return out.result

    def waiting(self) -> int:
        """Items produced and not yet merged (approximate)."""
        return sum(q.qsize() for q in self._queues)

    # -- Feed -------------------------------------------------------------------------
    def epoch_length(self, epoch: int) -> int:
        return self._steps

    def length_change(self) -> tuple[int, int] | None:
        return None

    def start(self, epoch: int, positions: list[int], delivered: set[int]) -> EpochRun:
        if not self._threads:
            self._start()
        return StreamEpochRun(self, positions)

    def state(self) -> dict[str, Any]:
        m = self._merge
        return {
            "steps_per_epoch": self._steps,
            "workers": self._workers,
            "stream": {
                "pass": m.pass_no,
                "turn": m.turn,
                "live": list(m.live),
                "taken": list(m.taken),
                "items": m.items,
            },
        }

    def check_state(self, state: dict[str, Any]) -> None:
        if self._factory is None:
            raise ConfigError(
                "a loader over a single generator object cannot resume: the "
                "generator cannot be replayed. Pass a factory to from_generator to "
                "make it resumable"
            )
        if state.get("workers") != self._workers:
            raise ConfigError(
                f"the state was saved with workers={state.get('workers')!r}; generator "
                "streams are per worker, so resume with the same number of workers"
            )
        if state.get("steps_per_epoch") != self._steps:
            raise ConfigError(
                f"the state was saved with steps_per_epoch="
                f"{state.get('steps_per_epoch')!r} but this loader has {self._steps}: "
                "resume with the same options"
            )
        if not isinstance(state.get("stream"), dict):
            raise ConfigError(
                "this generator state was written by an earlier stoker whose streams "
                "worked differently; it cannot be resumed by this version"
            )
        if self._threads:
            raise ConfigError("load_state_dict() must be called on a new loader")

    def restore(self, state: dict[str, Any], seed: int) -> None:
        s = state["stream"]
        m = self._merge
        m.pass_no, m.turn, m.items = int(s["pass"]), int(s["turn"]), int(s["items"])
        m.live = [bool(v) for v in s["live"]]
        m.taken = [int(v) for v in s["taken"]]
        for w in range(self._workers):
            self._first_pass[w] = m.pass_no if m.live[w] else m.pass_no + 1
            self._skip[w] = m.taken[w] if m.live[w] else 0

    def close(self, timeout_s: float) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []


class StreamEpochRun:
    """One epoch over a :class:`StreamFeed`: results come merged, hence in order."""

    def __init__(self, feed: StreamFeed, positions: list[int]) -> None:
        self._feed = feed
        self._positions = iter(positions)
        self._stopped = False

    def get(self, timeout_s: float) -> Result | None:
        if self._stopped:
            return None
        result = self._feed.next_result(timeout_s)
        if result is None:
            return None
        return result._replace(pos=next(self._positions))

    def release(self) -> None:
        """Nothing to do: each producer's own queue bounds it."""

    def check(self) -> None:
        if self._stopped:  # only close() stops a run while the consumer waits on it
            raise LoaderClosed("the loader was closed while an epoch was running")

    def waiting(self) -> int:
        return self._feed.waiting()

    def stop(self) -> None:
        self._stopped = True

    def join(self, timeout_s: float) -> bool:
        return True
