"""``stoker.Loader``: the public face of the engine, one concrete class over a feed.

A loader owns the validated options, the epoch counter and the positions delivered
in the current epoch, the stats and the observers, and the lifecycle. What differs
between kinds of source lives in its feed (``_engine/feeds.py``): an indexed source
on a backend, or generator streams. The loader is never subclassed; a new kind of
source or backend is a new feed or backend module.

Lifecycle: ``close()`` is idempotent; later use raises ``LoaderClosed``; a
``weakref.finalize`` stops workers if the loader is dropped without ``close()``.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any, Literal

from stoker import _state
from stoker._engine import seeding
from stoker._engine.feeds import Feed, IndexedFeed, Resources
from stoker._engine.generators import StreamFeed, streams_of
from stoker._engine.govern import Governor, TraceWindow
from stoker._engine.ordered import deliver
from stoker._engine.run import EpochRun, Result
from stoker._engine.stats import LoaderStats
from stoker._errors import ConfigError, LoaderClosed
from stoker._options import DEFAULT_MAX_QUEUE_SIZE, DEFAULT_WORKERS, LoaderOptions
from stoker._options import DEFAULT_TRACE_BATCHES as _TRACE_N
from stoker._ray_options import RayOptions
from stoker._types import BatchEvent, Observer, notify, scoped_observers

# How long close() and an epoch change wait for a batch still being computed.
_JOIN_TIMEOUT_S = 10.0
_ids = itertools.count(1)


class Loader:
    """Runs a batch source on parallel workers and delivers batches in order.

    Args:
        source: an object with ``__len__`` and ``__getitem__(i)`` returning batch
            ``i`` (arrays, tuples, lists or dicts of them, or any object); a Keras
            ``Sequence``/``PyDataset`` works unchanged, with its
            ``on_epoch_begin``/``on_epoch_end`` hooks called once per epoch on the
            consumer's thread. With ``batch_size``, ``source[i]`` is one sample. Its
            length is read again at every epoch start.
        workers: threads or processes computing batches, or ``"auto"`` (sized as
            it runs: docs/tuning.md; ``stats.summary()["tuning"]`` says why).
        use_multiprocessing: processes instead of threads (Keras' name), or
            ``"auto"``: threads, then processes if the work holds the GIL.
        max_queue_size: finished batches allowed to wait for the consumer (at most
            ``max_queue_size + workers`` exist at once), or ``"auto"``.
        shuffle: visit batches (or samples) in an order drawn from ``(seed, epoch)``.
        seed: root of every seed; None draws one (kept in ``state_dict()``).
        batch_size: treat ``source[i]`` as a sample and stack ``batch_size`` of them.
        drop_last: with ``batch_size``, drop the last partial batch.
        steps_per_epoch: batches per epoch; the next epoch continues where this one
            ended, so every batch is still used once per pass over the data.
        ordered: deliver in order (else as batches complete).
        timeout: seconds to wait for one batch before ``LoaderTimeout``.
        start_method: processes only: ``"fork"`` (the default on Linux),
            ``"forkserver"`` or ``"spawn"``.
        max_queue_bytes: processes only: cap on shared memory in flight.
        shard: ``(index, count)``: this host's disjoint part of every epoch.
        reseed_globals: processes only: reseed ``random``/``numpy.random`` per batch
            from ``(seed, epoch, index)``; default on when ``seed`` is given.
        backend: ``"ray"`` runs the workers as Ray actors (docs/ray.md); None:
            threads, or processes with ``use_multiprocessing=True``.
        ray: ``stoker.RayOptions`` for the Ray backend (cluster address, resources
            per worker, placement, retry); implies ``backend="ray"``.
        observers: extra ``stoker.Observer`` objects told about every batch.
        max_memory: bytes (or a fraction of available memory, default 0.25)
            batches in flight may take; fewer are kept in flight to stay inside.
        trace: a path: a Chrome/Perfetto trace of the last ``trace_batches``
            batches is written there at ``close()`` (``loader.trace``: a window).

    Raises:
        ConfigError: an option or the source is unusable, or an option that only
            applies to processes is given with threads; the message says the fix.
    """

    def __init__(
        self,
        source: Any,
        *,
        workers: int | Literal["auto"] = DEFAULT_WORKERS,
        use_multiprocessing: bool | Literal["auto"] = False,
        max_queue_size: int | Literal["auto"] = DEFAULT_MAX_QUEUE_SIZE,
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
        max_memory: float | None = None,
        trace: str | None = None,
        trace_batches: int = _TRACE_N,
    ) -> None:
        options = LoaderOptions(
            workers=workers,  # type: ignore[arg-type]
            use_multiprocessing=use_multiprocessing,  # type: ignore[arg-type]
            max_queue_size=max_queue_size,  # type: ignore[arg-type]
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
            backend=backend,
            ray=ray,
            max_memory=max_memory,
            trace=trace,
            trace_batches=trace_batches,
        )
        self._setup(
            options,
            observers,
            lambda name, root: IndexedFeed(source, options, root, name),
        )

    @classmethod
    def from_generator(
        cls,
        factory: Callable[[int, int], Any] | Any,
        *,
        steps_per_epoch: int,
        workers: int = DEFAULT_WORKERS,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        timeout: float | None = None,
        observers: list[Observer] | None = None,
    ) -> Loader:
        """A loader over generator streams instead of an indexable source.

        The streams are merged round-robin, torch's rule for an ``IterableDataset``
        with uneven shards: every item of a pass once, a stream that ends drops out,
        the pass ends when all have ended (``docs/determinism.md``).

        Args:
            factory: a function called as ``factory(worker_index, num_workers)`` in
                each worker thread, once per pass, returning an iterable; the streams
                must be disjoint. A plain generator object runs on one worker, for
                one pass (only one thread at a time can resume a generator).
            steps_per_epoch: items per epoch (required: a generator has no length).
                An epoch continues the pass where the last one stopped.
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
        fn, single, workers = streams_of(factory, steps_per_epoch, workers)
        options = LoaderOptions(
            workers=workers,
            max_queue_size=max_queue_size,
            steps_per_epoch=steps_per_epoch,
            timeout=timeout,
        )
        budget = options.max_queue_size + options.workers
        loader = cls.__new__(cls)
        loader._setup(options, observers, lambda name, _: StreamFeed(
            fn, single, options.workers, steps_per_epoch, budget, name))  # fmt: skip
        return loader

    def _setup(
        self,
        options: LoaderOptions,
        observers: list[Observer] | None,
        make_feed: Callable[[str, int], Feed],
    ) -> None:
        self.options = options
        self.id = f"loader-{next(_ids)}"
        self.seed = options.seed if options.seed is not None else seeding.fresh_seed()
        self._feed = make_feed(self.id, self.seed)
        self.source = self._feed.source
        self._epoch = 0
        self._epoch_len = self._feed.epoch_length(0)
        self._feed.length_change()  # the first reading is not a change
        self._done: set[int] = set()  # positions of the current epoch delivered
        self._resumed = False
        self._iterating = False
        self._active_iter: weakref.ref[Generator[Any, None, None]] | None = None
        self._closed = False
        self._pending_end: EpochRun | None = None  # cut-short epoch to finish
        self._resources = Resources(self._feed, _JOIN_TIMEOUT_S)
        self._finalizer = weakref.finalize(self, self._resources.release)
        self.stats = LoaderStats(options.workers, options.mode)
        self.stats.backend = getattr(self._feed, "counters", self.stats.backend)
        self._gov = Governor(options, self.stats, self._feed, self.id)
        self._observers = scoped_observers() + list(observers or [])
        settings = options.describe(self.seed, self._epoch_len, self.source)
        notify(self._observers, "on_start", self.id, settings)

    # -- public -----------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch (this shard): the epoch running now, or else the next."""
        if not self._iterating and not self._closed:
            self._epoch_len = self._feed.epoch_length(self._epoch)
        return self._epoch_len

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
            # it, exactly as a `break` would.
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
        self._gov.close()
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
            f"<stoker.Loader {self._epoch_len} batches, {o.workers} {o.mode} workers, "
            f"queue {o.max_queue_size}, {state}; Keras: model.fit(adapt(loader)) with "
            "`from stoker.adapters.keras import adapt`>"
        )

    def trace(self, path: str, batches: int = _TRACE_N) -> TraceWindow:
        """Trace from the next batch on; the handle's ``stop()`` (or ``with`` exit,
        or ``close()``) writes the last ``batches`` to ``path`` (docs/tuning.md)."""
        self._check_open()
        return TraceWindow(self._gov, self._gov.start_trace(path, batches))

    # -- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where the loader is: a small JSON-serialisable dict (``_state.py``).

        Taken inside the loop body, it covers every batch handed out so far; a new
        loader given it with ``load_state_dict`` delivers exactly the rest.
        """
        f = self._feed
        return _state.envelope(f.kind, self.seed, self._epoch, self._done, f.state())

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
        self.seed, self._epoch, self._done = _state.restore(
            state, self._feed, self.options.seed
        )
        self._epoch_len = self._feed.epoch_length(self._epoch)
        self._resumed = bool(self._done)

    # -- internals ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise LoaderClosed(
                f"{self.id} is closed; create a new stoker.Loader to iterate again"
            )

    def _hook(self, name: str) -> None:
        hook = getattr(self.source, name, None)
        if callable(hook):
            hook()

    def _begin_epoch(self, epoch: int) -> list[int]:
        """Hooks, the length for this epoch, and the positions still to deliver."""
        if not self._resumed:
            self._hook("on_epoch_begin")
        self._resumed = False
        self._epoch_len = self._feed.epoch_length(epoch)
        change = self._feed.length_change()
        if change is not None:
            self.stats.length_changed(epoch, *change)
        return [p for p in range(self._epoch_len) if p not in self._done]

    def _epoch_iter(self) -> Generator[Any, None, None]:
        epoch = self._epoch
        positions = self._begin_epoch(epoch)
        stats = self.stats
        observers = self._observers
        loader_id = self.id
        record = self._gov.record
        done_add = self._done.add
        self._iterating = True
        try:
            run = self._feed.start(epoch, positions, self._done)
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
                record(result, wait, depth, epoch)
                if observers:
                    r = result
                    event = BatchEvent(
                        loader_id, epoch, pos, r.source_index, wait, r.produce_s,
                        depth, r.nbytes,
                    )  # fmt: skip
                    notify(observers, "on_batch", event)
                yield result.batch
            completed = True
        finally:
            run.stop()
            stats.epoch_ended()
            buffer.clear()
            self._epoch += 1
            self._done = set()
            self._iterating = False
            if completed:
                run.join(_JOIN_TIMEOUT_S)
                self._resources.run = None
                self._end_epoch(epoch)
            else:
                self._pending_end = run

    def _finish_cut_epoch(self, call_hook: bool = True) -> None:
        """An epoch cut short (break, error): wait for its workers, then end it."""
        run = self._pending_end
        if run is None:
            return
        self._pending_end = None
        if not call_hook:
            return  # closing: _Resources.release stops the feed, then joins
        run.join(_JOIN_TIMEOUT_S)
        if self._resources.run is run:
            self._resources.run = None
        self._end_epoch(self._epoch - 1)

    def _end_epoch(self, epoch: int) -> None:
        self._hook("on_epoch_end")
        notify(self._observers, "on_epoch_end", self.id, epoch, self.stats.summary())
