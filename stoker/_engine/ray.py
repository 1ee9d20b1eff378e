"""Ray workers: the backend for sources that need more CPUs than one machine has.

The loader's workers are Ray actors (``_ray_actor.py``), started at the first epoch
on whichever nodes Ray places them (``RayOptions.placement``) and kept until
``close()``. The source crosses once: the consumer puts the fetcher into the object
store and every actor is built from that one object.

* Bound: a task is submitted only with a token; there are ``max_queue_size +
  workers`` tokens and the consumer returns one per batch it takes, so at most that
  many object refs are in flight, finished or waiting in the reorder buffer. Each
  task goes to the actor with the fewest tasks queued; an actor runs its tasks in
  the order they were sent.
* Memory: a batch's arrays live in Ray's object store; on the consumer's node
  ``ray.get`` maps them without a copy (read-only arrays), and the store frees them
  when the consumer drops the batch.
* Failures: a user exception comes back inside the reply and is rebuilt with its
  type and traceback (``tracebacks.py``). An actor or node that dies makes its refs
  fail at once (actors have ``max_restarts=0`` and ``max_task_retries=0``, so Ray
  never retries behind our back); that raises ``WorkerCrashed`` naming the node and
  the batch, or, with ``RayOptions.retry``, starts a new actor and computes the
  batch once more. An actor that cannot be placed within ``start_timeout_s`` raises
  ``WorkerError`` naming the missing resources: never a hang.
* Source state: before every epoch after the first, changed attributes of the
  source are sent to every actor (``resync.py``), ahead of the epoch's tasks.
* Lifecycle: ``close()`` kills the actors. The actors belong to this driver's Ray
  job, so a driver that dies takes them with it.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from typing import Any

from stoker._engine._ray_actor import RayWorker
from stoker._engine._ray_connect import (
    connect,
    cpus_per_worker,
    demand,
    elsewhere,
    load_ray,
    strategy,
)
from stoker._engine._ray_run import RayEpochRun, Worker
from stoker._engine.fetch import Fetcher
from stoker._engine.pickling import describe
from stoker._engine.process.resync import SourceSync
from stoker._engine.run import EpochRun, Task
from stoker._errors import (
    LoaderClosed,
    SerializationError,
    WorkerCrashed,
    WorkerError,
)
from stoker._options import LoaderOptions
from stoker._ray_options import RayOptions


class RayBackend:
    """Keeps ``workers`` Ray actors for the loader's life (replacing dead ones)."""

    def __init__(
        self,
        fetcher: Fetcher,
        opts: LoaderOptions,
        budget: int,
        name: str,
        stats: dict[str, Any],
    ) -> None:
        self.ray = load_ray()
        self.options = opts.ray or RayOptions()
        self._fetcher = fetcher
        self._workers = opts.workers
        self._budget = budget
        self._name = name
        reseed = opts.reseed_globals
        self._reseed = opts.seed is not None if reseed is None else reseed
        self._actor_cls: Any = None
        self._fetcher_ref: Any = None
        self._sync: SourceSync | None = None
        self._pool: list[Worker] = []
        self._cpus = 1.0
        self._runs = itertools.count(1)
        self.closed = False
        self.stats = stats  # shown in loader.stats.summary()["backend"]
        stats.update(
            ray_workers=opts.workers, ray_retries=0, ray_restarts=0, ray_calls=0
        )

    # -- workers ------------------------------------------------------------------
    def _start(self) -> None:
        ray = self.ray
        connect(ray, self.options)
        self._cpus = cpus_per_worker(ray, self.options, self._workers)
        self.stats["ray_cpus_per_worker"] = self._cpus
        # Concurrency groups can only be given here, not in .options().
        self._actor_cls = ray.remote(concurrency_groups={RayWorker.CONTROL: 1})(
            RayWorker
        )
        self._put_fetcher()
        self._pool = [self._new_worker(w) for w in range(self._workers)]

    def _put_fetcher(self) -> None:
        fetcher = self._fetcher
        try:
            self._fetcher_ref = self.ray.put(fetcher)
        except Exception as exc:
            raise SerializationError(
                f"{describe(fetcher.source, 'source')}: the source is serialized once "
                "to reach the Ray workers. Make that attribute picklable (open files, "
                "connections and locks lazily inside __getitem__, or define "
                "__getstate__), or use threads."
            ) from exc
        self._sync = SourceSync(fetcher.source)

    def _new_worker(self, w: int, avoid: str | None = None) -> Worker:
        opts = self.options
        where = strategy(opts)
        if avoid is not None:  # a replacement: not on the node that was just lost
            busy: dict[str, int] = {}
            for other in self._pool:
                if other.info is not None and not other.dead:
                    busy[other.info.node_id] = busy.get(other.info.node_id, 0) + 1
            where = elsewhere(self.ray, opts, self._cpus, avoid, busy)
        handle = self._actor_cls.options(
            num_cpus=self._cpus,
            resources=dict(opts.resources),
            scheduling_strategy=where,
            max_restarts=0,
            max_task_retries=0,
            name=None,
        ).remote(self._fetcher_ref, self._reseed)
        return Worker(w, handle, handle.info.remote())

    @property
    def workers(self) -> int:
        """How many actors the loader keeps."""
        return self._workers

    def least_loaded(self) -> Worker:
        """The live worker with the fewest tasks queued; of those, the one given a
        task longest ago (likely the first to finish, so a queued task waits least).

        Why the tie-break: a task sent to an actor is pinned there, and an actor's
        tasks run one after another. Ties went to the first in pool order, so the
        first actors got every queued task while the others ran dry between their
        batches (16 actors, window of 26: 1.20x the ideal epoch).
        """
        live = [w for w in self._pool if not w.dead]
        return min(live or self._pool, key=lambda w: (w.load, w.sent_at))

    def skip_runs_below(self, run: int) -> None:
        """Tell every live actor to skip what is queued for runs below ``run``."""
        for worker in self._pool:
            if not worker.dead:
                call = worker.handle.skip_runs_below.options(
                    concurrency_group=RayWorker.CONTROL
                )
                call.remote(run)

    def mark_dead(self, worker: Worker) -> None:
        worker.dead = True

    def replace(self, worker: Worker) -> None:
        """A new actor in ``worker``'s place (once per dead actor)."""
        if self._pool[worker.index] is not worker:
            return  # already replaced
        with contextlib.suppress(Exception):  # it is dead already
            self.ray.kill(worker.handle, no_restart=True)
        if self._fetcher_ref is None:
            self._put_fetcher()  # the source changed since the first put
        avoid = worker.info.node_id if worker.info is not None else None
        self._pool[worker.index] = self._new_worker(worker.index, avoid)
        self.stats["ray_restarts"] += 1

    def learn(self, worker: Worker) -> bool:
        """Fetch where ``worker`` runs once its actor is up; True when known."""
        if worker.info is not None:
            return True
        ray = self.ray
        ready, _ = ray.wait([worker.info_ref], timeout=0)
        if not ready:
            return False
        try:
            worker.info = ray.get(worker.info_ref)
        except ray.exceptions.RayError:
            worker.dead = True
            return True  # its tasks report the death
        nodes = {w.info.node_id for w in self._pool if w.info is not None}
        self.stats["ray_nodes"] = len(nodes)
        return True

    def check_started(self) -> None:
        """Raise ``WorkerError`` for an actor not placed within ``start_timeout_s``."""
        limit = self.options.start_timeout_s
        now = time.monotonic()
        for worker in self._pool:
            if self.learn(worker) or now - worker.started < limit:
                continue
            ray = self.ray
            raise WorkerError(
                f"ray worker {worker.index} was not started within "
                f"start_timeout_s={limit:g} s. Each worker asks Ray for "
                f"{demand(self.options, self._cpus)}; the cluster has "
                f"{_resources(ray.available_resources())} free of "
                f"{_resources(ray.cluster_resources())}. Lower workers or "
                "RayOptions(num_cpus=...), add nodes with those resources, or raise "
                "RayOptions(start_timeout_s=...) if nodes are still starting."
            )

    def crashed(
        self,
        worker: Worker,
        lost: list[tuple[int, int]],
        run: RayEpochRun,
        exc: Exception,
    ) -> WorkerCrashed:
        """The error for an actor (or its node) that died with ``lost`` in flight.

        ``lost`` holds ``(position, source index)`` of every batch the actor had not
        returned, first one first: Ray does not say which of them was running (a
        result finished just before the death can be lost too), so all are named.
        """
        self.learn(worker)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        retry = (
            " (it had already been retried once)"
            if self.options.retry
            else "; RayOptions(retry=True) would start a new actor and compute the "
            "batches again"
        )
        shown = ", ".join(f"{pos} (source index {index})" for pos, index in lost[:8])
        more = f" and {len(lost) - 8} more" if len(lost) > 8 else ""
        plural = "es" if len(lost) > 1 else ""
        error = WorkerCrashed(
            f"ray worker {worker.index} ({worker.where()}) died before returning "
            f"batch{plural} {shown}{more} of epoch {run.epoch}{retry}. Ray said: "
            f"{reason} The epoch stops here; the next one starts a new actor.",
            worker=worker.index,
            index=lost[0][1],
        )
        error.__cause__ = exc
        return error

    # -- Backend ------------------------------------------------------------------
    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        if self.closed:
            raise LoaderClosed(f"{self._name}: the Ray backend is closed")
        if not self._pool:
            self._start()
        else:
            self._update()
            for worker in list(self._pool):
                if worker.dead:
                    self.replace(worker)
        return RayEpochRun(self, next(self._runs), epoch, tasks, self._budget)

    def _update(self) -> None:
        assert self._sync is not None
        payload = self._sync.changes(self._fetcher.source)
        if payload is None:
            return
        for worker in self._pool:
            if not worker.dead:
                worker.handle.update.remote(payload)
        self._fetcher_ref = None  # a new actor needs the source as it is now

    def close(self, timeout_s: float) -> None:
        if self.closed:
            return
        self.closed = True
        ray = self.ray
        if ray.is_initialized():  # at exit, Ray may have shut down first
            for worker in self._pool:
                with contextlib.suppress(Exception):  # dead already
                    ray.kill(worker.handle, no_restart=True)
        self._pool = []
        self._fetcher_ref = None


def _resources(res: dict[str, float]) -> str:
    keep = {k: v for k, v in res.items() if not k.startswith(("node:", "memory"))}
    keep.pop("object_store_memory", None)
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(keep.items())) + "}"
