"""``stoker.Loader``: the public face of the engine.

A loader owns: the validated options, the index plan, the epoch counter and the
positions delivered in the current epoch (its resumable state), the backend, the
stats and the observers. Iterating it runs one epoch on the backend and delivers the
batches through ``_engine.ordered.deliver``.

Lifecycle: ``close()`` is idempotent; later use raises ``LoaderClosed``; a
``weakref.finalize`` stops workers if the loader is dropped without ``close()``.
"""

from __future__ import annotations

import inspect
import itertools
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any

from stoker._engine import seeding
from stoker._engine.fetch import Fetcher
from stoker._engine.ordered import deliver
from stoker._engine.plan import Plan
from stoker._engine.run import Backend, EpochRun, Result, Task
from stoker._engine.stats import LoaderStats
from stoker._engine.threads import ThreadBackend
from stoker._errors import ConfigError, LoaderClosed
from stoker._options import (
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_WORKERS,
    LoaderOptions,
    RayOptions,
)
from stoker._types import BatchEvent, Observer, notify, scoped_observers

# How long close() and an epoch change wait for a batch still being computed.
_JOIN_TIMEOUT_S = 10.0
STATE_FORMAT = "stoker.loader"
STATE_VERSION = 1
_ids = itertools.count(1)


class _Resources:
    """What must be released when the loader goes: the finalizer holds only this."""

    def __init__(self) -> None:
        self.backend: Backend | None = None
        self.run: EpochRun | None = None

    def release(self) -> None:
        # Close the backend before joining the run: process workers are stopped
        # within a second, instead of first finishing the batches they hold.
        if self.run is not None:
            self.run.stop()
        if self.backend is not None:
            self.backend.close(_JOIN_TIMEOUT_S)
            self.backend = None
        if self.run is not None:
            self.run.join(_JOIN_TIMEOUT_S)
            self.run = None


def _source_length(source: Any) -> int:
    if inspect.isgenerator(source) or (
        hasattr(source, "__next__") and not hasattr(source, "__getitem__")
    ):
        raise ConfigError(
            f"{type(source).__name__} is a generator/iterator: stoker cannot index it. "
            "Use stoker.Loader.from_generator(factory, steps_per_epoch=...)"
        )
    if not hasattr(source, "__getitem__"):
        raise ConfigError(
            f"source of type {type(source).__name__} has no __getitem__: a source must "
            "have __len__ and __getitem__(i) returning batch i (or sample i with "
            "batch_size=...); for a generator use stoker.Loader.from_generator"
        )
    n: Any
    try:
        n = len(source)
    except TypeError:
        n = getattr(source, "num_batches", None)  # Keras 3 PyDataset without __len__
        if n is None:
            raise ConfigError(
                f"source of type {type(source).__name__} has no length: give it "
                "__len__ (or, for a Keras PyDataset, num_batches), or wrap an endless "
                "source with stoker.Loader.from_generator(..., steps_per_epoch=N)"
            ) from None
    if not isinstance(n, int) or n < 0:
        raise ConfigError(f"len(source) returned {n!r}: expected a whole number >= 0")
    return n


class Loader:
    """Runs a batch source on parallel workers and delivers batches in order.

    Args:
        source: an object with ``__len__`` and ``__getitem__(i)`` returning batch
            ``i`` (arrays, tuples, lists or dicts of them, or any object); a Keras
            ``Sequence``/``PyDataset`` works unchanged, with its
            ``on_epoch_begin``/``on_epoch_end`` hooks called once per epoch on the
            consumer's thread. With ``batch_size``, ``source[i]`` is one sample.
        workers: threads or processes computing batches.
        use_multiprocessing: processes instead of threads (Keras' name).
        max_queue_size: finished batches allowed to wait for the consumer; at most
            ``max_queue_size + workers`` batches exist at once.
        shuffle: visit batches (or samples) in an order drawn from ``(seed, epoch)``.
        seed: root of every seed; None draws one (kept in ``state_dict()``).
        batch_size: treat ``source[i]`` as a sample and stack ``batch_size`` of them.
        drop_last: with ``batch_size``, drop the last partial batch.
        steps_per_epoch: batches per epoch; the next epoch continues where this one
            ended, so every batch is still used once per pass over the data.
        ordered: deliver in order (else as batches complete).
        timeout: seconds to wait for one batch before ``LoaderTimeout``.
        start_method: processes: ``"fork"``, ``"forkserver"`` or ``"spawn"``.
        max_queue_bytes: processes: cap on shared memory in flight.
        shard: ``(index, count)``: this host's disjoint part of every epoch.
        reseed_globals: processes: reseed ``random``/``numpy.random`` per batch from
            ``(seed, epoch, index)``; default on when ``seed`` is given.
        backend: ``"ray"`` runs the workers as Ray actors (docs/ray.md); None:
            threads, or processes with ``use_multiprocessing=True``.
        ray: ``stoker.RayOptions`` for the Ray backend (cluster address, resources
            per worker, placement, retry); implies ``backend="ray"``.
        observers: extra ``stoker.Observer`` objects told about every batch.

    Raises:
        ConfigError: an option or the source is unusable; the message says the fix.
    """

    def __init__(
        self,
        source: Any,
        workers: int = DEFAULT_WORKERS,
        use_multiprocessing: bool = False,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        shuffle: bool = False,
        seed: int | None = None,
        batch_size: int | None = None,
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
        ordered: bool = True,
        timeout: float | None = None,
        start_method: str | None = None,
        max_queue_bytes: int | None = None,
        shard: tuple[int, int] | None = None,
        reseed_globals: bool | None = None,
        backend: str | None = None,
        ray: RayOptions | None = None,
        observers: list[Observer] | None = None,
    ) -> None:
        self.options = LoaderOptions(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
            shuffle=shuffle,
            seed=seed,
            batch_size=batch_size,
            drop_last=drop_last,
            steps_per_epoch=steps_per_epoch,
            ordered=ordered,
            timeout=timeout,
            start_method=start_method,
            max_queue_bytes=max_queue_bytes,
            shard=tuple(shard) if shard is not None else None,  # type: ignore[arg-type]
            reseed_globals=reseed_globals,
            backend=backend,  # issue 17
            ray=ray,  # issue 17
        )
        self._extra_observers = list(observers or [])
        self._setup(source)

    def _setup(self, source: Any) -> None:
        """State shared by every kind of loader (also ``from_generator``)."""
        opts = self.options
        self.id = f"loader-{next(_ids)}"
        self.source = source
        self.seed = opts.seed if opts.seed is not None else seeding.fresh_seed()
        self._length = self._init_length(source)
        self._epoch = 0
        self._done: set[int] = set()  # positions of the current epoch delivered
        self._resumed = False
        self._iterating = False
        self._active_iter: weakref.ref[Generator[Any, None, None]] | None = None
        self._closed = False
        self._pending_end: EpochRun | None = None  # cut-short epoch to finish
        self._resources = _Resources()
        self._finalizer = weakref.finalize(self, self._resources.release)
        self.stats = LoaderStats(opts.workers, opts.mode)
        self._observers = scoped_observers()
        self._observers.extend(getattr(self, "_extra_observers", ()))
        notify(self._observers, "on_start", self.id, self._settings())

    def _init_length(self, source: Any) -> int:
        n = _source_length(source)
        self._plan = Plan(
            n,
            seed=self.seed,
            shuffle=self.options.shuffle,
            batch_size=self.options.batch_size,
            drop_last=self.options.drop_last,
            steps_per_epoch=self.options.steps_per_epoch,
            shard=self.options.shard,
        )
        self._fetcher = Fetcher(source, self.options.batch_size, self.seed)
        return n

    def _settings(self) -> dict[str, Any]:
        s = self.options.to_dict()
        s.update(
            seed=self.seed,
            seed_given=self.options.seed is not None,
            length=len(self),
            source_type=type(self.source).__name__,
        )
        if self.options.use_multiprocessing:
            from stoker._options import default_start_method

            s["start_method"] = self.options.start_method or default_start_method()
        return s

    # -- public -----------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch (for this shard)."""
        return self._plan.epoch_length

    @property
    def epoch(self) -> int:
        """The epoch the next (or current) iteration runs, from 0."""
        return self._epoch

    def __iter__(self) -> Iterator[Any]:
        """Run one epoch; yields its batches. Every position exactly once."""
        self._check_open()
        active = self._active_iter() if self._active_iter is not None else None
        if active is not None:
            # An earlier epoch's iterator is paused mid-epoch: starting a new one ends
            # it, exactly as a `break` would (its undelivered batches are not lost to
            # the new epoch, which is a fresh pass over its own positions).
            active.close()
        self._finish_cut_epoch()
        gen = self._epoch_iter()
        self._active_iter = weakref.ref(gen)
        return gen

    def close(self) -> None:
        """Stop the workers and free every resource; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finish_cut_epoch(call_hook=False)
        self._finalizer()
        notify(self._observers, "on_close", self.id, self.stats.summary())

    def __enter__(self) -> Loader:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        o = self.options
        state = "closed" if self._closed else f"epoch {self._epoch}"
        return (
            f"<stoker.Loader {len(self)} batches, {o.workers} {o.mode} workers, "
            f"queue {o.max_queue_size}, {state}>"
        )

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: a small JSON-serialisable dict (format version 1).

        Taken inside the loop body, it covers every batch handed out so far; a new
        loader given it with ``load_state_dict`` delivers exactly the rest.
        """
        done = sorted(self._done)
        prefix = 0
        while prefix < len(done) and done[prefix] == prefix:
            prefix += 1
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "kind": self._kind(),
            "seed": self.seed,
            "epoch": self._epoch,
            "position": prefix,
            "delivered_after": done[prefix:],
            "length": self._length,
            "epoch_length": len(self),
            "shuffle": self.options.shuffle,
            "batch_size": self.options.batch_size,
            "drop_last": self.options.drop_last,
            "steps_per_epoch": self.options.steps_per_epoch,
            "shard": list(self.options.shard) if self.options.shard else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``: the next iteration continues that epoch.

        Raises:
            ConfigError: the state is not a stoker loader state, has an unknown
                version, or was taken with a different source length or options.
        """
        self._check_open()
        if self._iterating:
            raise ConfigError(
                "load_state_dict() during iteration: call it before the `for` loop"
            )
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError(
                "load_state_dict() needs the dict returned by Loader.state_dict(); "
                f"got {type(state).__name__} without format={STATE_FORMAT!r}"
            )
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"loader state version {state.get('version')!r} is not supported by "
                f"this stoker (it reads version {STATE_VERSION}); resume with the "
                "stoker version that wrote it"
            )
        mine = self.state_dict()
        for key in (
            "kind",
            "length",
            "shuffle",
            "batch_size",
            "drop_last",
            "steps_per_epoch",
            "shard",
        ):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"the state was saved with {key}={state.get(key)!r} but this "
                    f"loader has {key}={mine[key]!r}: resume with the same source and "
                    "options"
                )
        if self.options.seed is not None and state["seed"] != self.options.seed:
            raise ConfigError(
                f"the state was saved with seed={state['seed']} but this loader was "
                f"given seed={self.options.seed}: pass seed={state['seed']} or "
                "seed=None"
            )
        self.seed = int(state["seed"])
        self._init_length(self.source)
        self._epoch = int(state["epoch"])
        self._done = set(range(int(state["position"]))) | set(state["delivered_after"])
        self._resumed = bool(self._done)

    # -- internals ---------------------------------------------------------------------
    def _kind(self) -> str:
        return "indexed"

    def _check_open(self) -> None:
        if self._closed:
            raise LoaderClosed(
                f"{self.id} is closed; create a new stoker.Loader to iterate again"
            )

    def _backend(self) -> Backend:
        res = self._resources
        if res.backend is None:
            res.backend = self._make_backend()
        return res.backend

    def _make_backend(self) -> Backend:
        opts = self.options
        budget = opts.max_queue_size + opts.workers
        if opts.mode == "ray":  # issue 17: imported only when asked for (Ray is big)
            from stoker._engine.ray import RayBackend

            return RayBackend(self._fetcher, opts, budget, self.id, self.stats.backend)
        if opts.use_multiprocessing:
            try:
                from stoker._engine.processes import ProcessBackend
            except ImportError:
                raise ConfigError(
                    "use_multiprocessing=True is not available in this build of "
                    "stoker; use threads (use_multiprocessing=False)"
                ) from None
            return ProcessBackend(self._fetcher, opts, budget, self.id)  # type: ignore[no-any-return,unused-ignore]
        return ThreadBackend(self._fetcher, opts.workers, budget, self.id)

    def _start_run(self, epoch: int, positions: list[int]) -> EpochRun:
        keys = self._plan.keys(epoch)
        tasks: list[Task] = [(p, keys[p]) for p in positions]
        return self._backend().start_epoch(epoch, tasks)

    def _hook(self, name: str) -> None:
        hook = getattr(self.source, name, None)
        if callable(hook):
            hook()

    def _epoch_iter(self) -> Generator[Any, None, None]:
        epoch = self._epoch
        positions = [p for p in range(len(self)) if p not in self._done]
        if not self._resumed:
            self._hook("on_epoch_begin")
        self._resumed = False
        stats = self.stats
        observers = self._observers
        loader_id = self.id
        done_add = self._done.add
        self._iterating = True
        try:
            run = self._start_run(epoch, positions)
        except BaseException:
            self._iterating = False  # nothing started: the epoch is still to run
            raise
        stats.epoch_started()
        self._resources.run = run
        buffer: dict[int, Result] = {}
        completed = False
        try:
            for result, wait, depth in deliver(
                run,
                positions,
                ordered=self.options.ordered,
                timeout=self.options.timeout,
                epoch=epoch,
                workers=self.options.workers,
                buffer=buffer,
            ):
                if self._closed:
                    raise LoaderClosed(f"{loader_id} was closed during the epoch")
                run.release()
                pos = result.pos
                done_add(pos)
                stats.record(wait, result.produce_s, result.cpu_s, depth, result.nbytes)
                if observers:
                    notify(
                        observers,
                        "on_batch",
                        BatchEvent(
                            loader_id,
                            epoch,
                            pos,
                            result.source_index,
                            wait,
                            result.produce_s,
                            depth,
                            result.nbytes,
                        ),
                    )
                yield result.batch
            completed = True
        finally:
            run.stop()
            stats.epoch_ended()
            self._keep_undelivered(run, buffer)
            self._epoch += 1
            self._done = set()
            self._iterating = False
            if completed:
                run.join(_JOIN_TIMEOUT_S)
                self._resources.run = None
                self._end_epoch(epoch)
            else:
                self._pending_end = run

    def _keep_undelivered(self, run: EpochRun, buffer: dict[int, Result]) -> None:
        """Indexed sources recompute: nothing to keep (generators override)."""

    def _finish_cut_epoch(self, call_hook: bool = True) -> None:
        """An epoch cut short (break, error): wait for its workers, then end it."""
        run = self._pending_end
        if run is None:
            return
        self._pending_end = None
        if not call_hook:
            return  # closing: _Resources.release stops the backend, then joins
        run.join(_JOIN_TIMEOUT_S)
        if self._resources.run is run:
            self._resources.run = None
        self._end_epoch(self._epoch - 1)

    def _end_epoch(self, epoch: int) -> None:
        self._hook("on_epoch_end")
        notify(self._observers, "on_epoch_end", self.id, epoch, self.stats.summary())

    # -- generators -----------------------------------------------------------------
    @classmethod
    def from_generator(
        cls,
        factory: Callable[[int, int], Any] | Any,
        steps_per_epoch: int,
        workers: int = DEFAULT_WORKERS,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        timeout: float | None = None,
        observers: list[Observer] | None = None,
    ) -> Loader:
        """A loader over generators instead of an indexable source.

        Args:
            factory: a function called as ``factory(worker_index, num_workers)`` in
                each worker thread, returning an iterable; the streams must be
                disjoint. Stream position ``g`` always comes from worker
                ``g % workers``, so the interleaving is deterministic. A plain
                generator object is accepted too and runs on one worker: a generator
                can only be resumed on one thread at a time, so more workers could not
                make it faster (write a factory, or a ``__getitem__`` source, for that).
            steps_per_epoch: items per epoch (required: a generator has no length).
            workers: worker threads (each with its own stream).
            max_queue_size: finished items allowed to wait for the consumer.
            timeout: seconds to wait for one item before ``LoaderTimeout``.
            observers: extra ``stoker.Observer`` objects.

        Returns:
            A loader; each ``for`` over it is one epoch of ``steps_per_epoch`` items.
            Items produced but not delivered when an epoch is cut short come first in
            the next epoch (a generator cannot be rewound).

        Raises:
            ConfigError: bad arguments.
        """
        from stoker._generator_loader import GeneratorLoader

        return GeneratorLoader(
            factory,
            steps_per_epoch=steps_per_epoch,
            workers=workers,
            max_queue_size=max_queue_size,
            timeout=timeout,
            observers=observers,
        )
