"""One epoch on the Ray backend's actors: the sliding window of object refs.

Rule: a task is submitted only with a token. There are ``max_queue_size + workers``
tokens and the consumer returns one per batch it takes (``release``), so at most
that many object refs exist at once, in flight, finished, or held in the reorder
buffer; each goes to the live actor with the fewest tasks queued. Everything here
runs on the consumer's thread: ``get`` waits on the refs in flight with
``ray.wait`` and collects every finished one in the same round trip.

Rule for cheap batches: one actor call costs about half a millisecond of Ray's own
work (``benchmarks/ray_backend.py``: 488 us per trivial batch), so when the batches
take much less than that to produce (a running average of ``produce_s``), a call
carries a run of consecutive batches (``fetch_many``), up to :data:`_MAX_CHUNK` and
to an equal share of the tokens per actor; while calls are under way, the next run
waits for its tokens rather than leave as a shorter one. Batches that take longer
than a call costs go one per call, exactly as before. Each batch of a run still
holds its own token and comes back as its own ``RayReply``, so the bound, the order,
the errors and the stats are those of single calls. A run whose reply cannot be
serialized is sent again one batch per call, so the error names the batch.

Why the split between a lost actor and a failed batch: ``fetch`` never raises (it
returns the user's exception packed), so when ``ray.get`` raises, either Ray could
not serialize the reply (``RayTaskError``: the batch does not pickle) or the actor
or its node is gone (any other ``RayError``). Only the second is a crash.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from stoker._engine import tracebacks
from stoker._engine._ray_actor import RayReply, RayTask, WorkerInfo
from stoker._engine.plan import Key
from stoker._engine.run import Result, Task, add_note
from stoker._errors import LoaderClosed, SerializationError

if TYPE_CHECKING:
    from stoker._engine.ray import RayBackend


class Worker:
    """One worker position: its current actor and what is known about it."""

    def __init__(self, index: int, handle: Any, info_ref: Any) -> None:
        self.index = index
        self.handle = handle
        self.info_ref = info_ref
        self.info: WorkerInfo | None = None
        self.started = time.monotonic()
        self.load = 0  # tasks sent and not yet seen finished
        self.sent_at = 0.0  # when it was last given a task (least_loaded's tie-break)
        self.dead = False

    def where(self) -> str:
        return "node unknown" if self.info is None else self.info.describe()


class _Flight(NamedTuple):
    """A task in flight: what to report or resubmit if its actor dies."""

    pos: int
    key: Key
    worker: Worker
    attempt: int


class _Call(NamedTuple):
    """One actor call in flight: its tasks, and whether it was ``fetch_many``."""

    flights: list[_Flight]
    many: bool


# See the module docstring: the cost of one actor call, and the longest run of
# batches per call (a run's batches reach the consumer together).
_CALL_COST_S = 0.0005
_MAX_CHUNK = 16
# Weight of the newest batch in the running average of produce times.
_EMA_WEIGHT = 0.2


class RayEpochRun:
    """One epoch on the backend's actors (see the module docstring for the bound)."""

    def __init__(
        self, backend: RayBackend, run: int, epoch: int, tasks: list[Task], budget: int
    ) -> None:
        self._backend = backend
        self.run = run
        self._ray = backend.ray
        self.epoch = epoch
        self._todo: deque[Task] = deque(tasks)
        self._tokens = budget
        self._budget = budget
        self._produce_s: float | None = None  # running average, for _chunk
        self._flight: dict[Any, _Call] = {}  # ObjectRef -> the call's tasks
        self._done: deque[Result] = deque()
        self._crashed = False  # an actor died: start no new task
        self._collecting: list[_Flight] = []
        self._stopped = False
        self._pump()

    def _chunk(self) -> int:
        """How many batches the next call carries (module docstring)."""
        if self._produce_s is None:
            return 1
        want = int(_CALL_COST_S / max(self._produce_s, 1e-7))
        share = self._budget // self._backend.workers
        return max(1, min(want, share, _MAX_CHUNK))

    def _pump(self) -> None:
        while self._todo and self._tokens > 0 and not self._stopped:
            if self._crashed:
                return
            n = min(self._chunk(), len(self._todo))
            if self._tokens < n and self._flight:
                return  # work is under way: wait for the tokens of a whole run
            n = min(n, self._tokens)
            items = [self._todo.popleft() for _ in range(n)]
            self._tokens -= n
            self._submit(items, 0)

    def _submit(self, items: list[tuple[int, Key]], attempt: int) -> None:
        worker = self._backend.least_loaded()
        tasks = [RayTask(self.run, self.epoch, pos, key) for pos, key in items]
        if len(tasks) == 1:
            ref = worker.handle.fetch.remote(tasks[0])
        else:
            ref = worker.handle.fetch_many.remote(tasks)
        worker.load += len(tasks)
        worker.sent_at = time.monotonic()
        self._backend.stats["ray_calls"] += 1
        flights = [_Flight(pos, key, worker, attempt) for pos, key in items]
        self._flight[ref] = _Call(flights, len(tasks) > 1)

    def _observe(self, reply: RayReply) -> None:
        if reply.skipped or reply.error is not None:
            return
        last = self._produce_s
        produce = reply.produce_s
        self._produce_s = (
            produce if last is None else last + _EMA_WEIGHT * (produce - last)
        )

    def _collect(self, ready: list[Any]) -> None:
        ray = self._ray
        calls = [self._flight.pop(ref) for ref in ready]
        for call in calls:
            for f in call.flights:
                f.worker.load -= 1
            self._backend.learn(call.flights[0].worker)  # for stats and messages
        try:
            replies = ray.get(ready)
        except ray.exceptions.RayError:
            replies = None  # one of them failed: take them one by one
        if replies is not None:
            for call, reply in zip(calls, replies, strict=True):
                self._on_replies(call, reply)
            return
        outcomes: list[tuple[_Call, Any, Exception | None]] = []
        for call, ref in zip(calls, ready, strict=True):
            try:
                outcomes.append((call, ray.get(ref), None))
            except ray.exceptions.RayError as error:
                outcomes.append((call, None, error))
        # For _on_lost: the dead actor's other batches lost in this same round.
        self._collecting = [
            f
            for call, _, exc in outcomes
            if exc is not None and not isinstance(exc, ray.exceptions.RayTaskError)
            for f in call.flights
        ]
        for call, reply, exc in outcomes:
            if exc is None:
                self._on_replies(call, reply)
            elif isinstance(exc, ray.exceptions.RayTaskError) and call.many:
                # Which batch does not pickle? Ask again one batch per call.
                for f in call.flights:
                    self._submit([(f.pos, f.key)], f.attempt)
            elif isinstance(exc, ray.exceptions.RayTaskError):
                self._on_unsendable(call.flights[0], exc)
            else:
                for f in call.flights:
                    self._on_lost(f, exc)
        self._collecting = []

    def _on_replies(self, call: _Call, reply: Any) -> None:
        replies = reply if call.many else [reply]
        for f, one in zip(call.flights, replies, strict=True):
            self._observe(one)
            self._on_reply(f, one)

    def _index(self, f: _Flight) -> int:
        return f.key if isinstance(f.key, int) else f.pos

    def _on_reply(self, f: _Flight, reply: RayReply) -> None:
        w = f.worker.index
        index = self._index(f)
        if reply.skipped:
            return
        if reply.error is None:
            self._done.append(
                Result(
                    f.pos,
                    reply.batch,
                    reply.produce_s,
                    reply.cpu_s,
                    reply.nbytes,
                    None,
                    w,
                    index,
                )
            )
            return
        raised = tracebacks.unpack(reply.error)
        self._backend.learn(f.worker)  # name its node in the note
        add_note(
            raised, f.key, f.pos, self.epoch, f"ray worker {w}, {f.worker.where()}"
        )
        self._done.append(
            Result(f.pos, None, reply.produce_s, reply.cpu_s, 0, raised, w, index)
        )

    def _on_unsendable(self, f: _Flight, exc: Exception) -> None:
        # fetch() returns user exceptions, so a RayTaskError means Ray could not
        # serialize the reply: the batch itself does not pickle.
        error = SerializationError(
            f"batch {f.pos} of epoch {self.epoch} (source index {self._index(f)}) "
            f"cannot cross from ray worker {f.worker.index} to the consumer: "
            f"{str(exc).strip().splitlines()[-1]}. Return numpy arrays, numbers, "
            "strings, and tuples, lists or dicts of them."
        )
        error.__cause__ = exc
        self._done.append(
            Result(f.pos, None, 0.0, 0.0, 0, error, f.worker.index, self._index(f))
        )

    def _on_lost(self, f: _Flight, exc: Exception) -> None:
        backend = self._backend
        backend.mark_dead(f.worker)
        if backend.options.retry and f.attempt == 0 and not self._stopped:
            backend.replace(f.worker)
            backend.stats["ray_retries"] += 1
            self._submit([(f.pos, f.key)], 1)
            return
        # Delivered in order like a raised exception: batches before it that other
        # actors still compute arrive first. No new task starts after a crash.
        self._crashed = True
        others = [
            *(o for call in self._flight.values() for o in call.flights),
            *self._collecting,
        ]
        lost = {(o.pos, self._index(o)) for o in others if o.worker is f.worker}
        lost.add((f.pos, self._index(f)))
        error = backend.crashed(f.worker, sorted(lost), self, exc)
        self._done.append(
            Result(f.pos, None, 0.0, 0.0, 0, error, f.worker.index, self._index(f))
        )

    # -- EpochRun -----------------------------------------------------------------
    def get(self, timeout_s: float) -> Result | None:
        if self._done:
            return self._done.popleft()
        if self._backend.closed or not self._flight:
            return None
        ray = self._ray
        refs = list(self._flight)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout_s)
        if ready and rest:  # take every other finished batch in the same round trip
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        if ready:
            self._collect(ready)
            self._pump()
        return self._done.popleft() if self._done else None

    def release(self) -> None:
        self._tokens += 1
        self._pump()

    def check(self) -> None:
        if self._backend.closed:
            raise LoaderClosed("the loader was closed while an epoch was running")
        self._backend.check_started()

    def waiting(self) -> int:
        return len(self._done)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._todo.clear()
        self._done.clear()
        if self._backend.closed:
            return
        # Queued tasks return at once; a running one finishes (it cannot be stopped
        # from outside without killing the actor).
        self._backend.skip_runs_below(self.run + 1)

    def join(self, timeout_s: float) -> bool:
        ray = self._ray
        deadline = time.monotonic() + timeout_s
        while self._flight and not self._backend.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            refs = list(self._flight)
            ready, _ = ray.wait(
                refs, num_returns=len(refs), timeout=remaining, fetch_local=False
            )
            for ref in ready:
                for f in self._flight.pop(ref).flights:
                    f.worker.load -= 1
        if self._backend.closed:
            self._flight.clear()
        return not self._flight
