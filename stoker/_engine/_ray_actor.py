"""The Ray worker actor and the records that cross between it and the consumer.

Rule: an actor holds one copy of the loader's :class:`Fetcher` (received once, from
the object store) and computes one batch per ``fetch`` call (or a run of them per
``fetch_many`` call); it never raises out of either. A user exception comes back
packed (``tracebacks.pack``) inside the reply, so the consumer rebuilds it with its
own type and the actor's traceback exactly as for process workers, instead of Ray's
``RayTaskError`` wrapper. Only a dead actor or node makes ``ray.get`` raise, which is
how the consumer tells a crash from an error.

Why an actor per worker rather than Ray tasks: a task would deserialize the source
for every batch; an actor keeps it, and its reseeded global generators belong to its
own process, as a process worker's do (seeding rule 4).

The class is plain Python: ``ray.remote`` wraps it when the backend starts, so this
module imports without Ray.
"""

from __future__ import annotations

import math
import os
import socket
import time
from typing import Any, NamedTuple

from stoker._engine import tracebacks
from stoker._engine.fetch import Fetcher
from stoker._engine.plan import Key
from stoker._engine.process import resync
from stoker._tree import nbytes


class RayTask(NamedTuple):
    """One batch to compute: sent to an actor with ``fetch``."""

    run: int  # the epoch run that asked for it (``skip_runs_below``)
    epoch: int
    pos: int
    key: Key


class RayReply(NamedTuple):
    """What ``fetch`` returns; its arrays travel through Ray's object store.

    Attributes:
        pos: position of the batch in the epoch.
        batch: the batch, or None when ``error`` is set.
        produce_s: wall seconds spent in ``source[i]``.
        cpu_s: CPU seconds of the actor's thread in ``source[i]``.
        nbytes: bytes of array data in the batch.
        error: ``tracebacks.pack`` of the exception ``source[i]`` raised, or None.
        skipped: the task's run was stopped before it started: nothing computed.
    """

    pos: int
    batch: Any
    produce_s: float
    cpu_s: float
    nbytes: int
    error: tuple[str, bytes, str, str] | None
    skipped: bool = False


class WorkerInfo(NamedTuple):
    """Where an actor runs, for messages about it."""

    node_id: str
    host: str
    ip: str
    pid: int

    def describe(self) -> str:
        return f"node {self.node_id[:12]} ({self.host}, {self.ip}), pid {self.pid}"


class RayWorker:
    """A loader's worker on Ray (see the module docstring)."""

    # The concurrency group of ``skip_runs_below``: its own thread, so that it takes
    # effect while ``fetch`` calls wait in the actor's queue (they run one at a time,
    # in the order sent, in the default group).
    CONTROL = "control"

    def __init__(self, fetcher: Fetcher, reseed_globals: bool) -> None:
        self._fetcher = fetcher
        fetcher.reseed_globals = reseed_globals
        self._skip_below = 0  # runs below this were stopped by the consumer

    def info(self) -> WorkerInfo:
        """The node and process this actor runs on."""
        import ray

        return WorkerInfo(
            ray.get_runtime_context().get_node_id(),
            socket.gethostname(),
            ray.util.get_node_ip_address(),
            os.getpid(),
        )

    def fetch(self, task: RayTask) -> RayReply:
        """Compute one batch; a user exception is returned, not raised."""
        if task.run < self._skip_below:
            return RayReply(task.pos, None, 0.0, math.nan, 0, None, skipped=True)
        clock = time.perf_counter
        t0 = clock()
        c0 = time.thread_time()
        try:
            batch = self._fetcher(task.key, task.epoch)
        except Exception as exc:
            return RayReply(
                task.pos, None, clock() - t0, math.nan, 0, tracebacks.pack(exc)
            )
        cpu = time.thread_time() - c0
        return RayReply(task.pos, batch, clock() - t0, cpu, nbytes(batch), None)

    def fetch_many(self, tasks: list[RayTask]) -> list[RayReply]:
        """Compute a run of batches in one call (``_ray_run``: cheap batches)."""
        return [self.fetch(task) for task in tasks]

    def skip_runs_below(self, run: int) -> None:
        """Tasks of runs below ``run`` still queued here return at once, unrun.

        Why not ``ray.cancel``: cancelling a queued call of an actor that runs its
        calls in order leaves a gap in its sequence numbers, and the actor then waits
        30 s for the missing call before it runs anything else.
        """
        self._skip_below = max(self._skip_below, run)

    def update(self, payload: bytes) -> None:
        """Apply the source's changed attributes (``resync.py``) before the next
        epoch; Ray runs an actor's calls in the order they were sent, so every
        later ``fetch`` sees them."""
        self._fetcher.source = resync.apply(self._fetcher.source, payload)
