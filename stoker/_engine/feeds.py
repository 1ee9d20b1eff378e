"""What one kind of source contributes to an epoch: the ``Feed`` protocol.

``stoker.Loader`` is one class over a feed. It owns the lifecycle, the epoch loop,
the stats and observers and the state envelope; the feed owns what differs between
kinds of source:

- :class:`IndexedFeed` (this module): a source with ``__len__`` and
  ``__getitem__``. It holds the index plan, the fetcher and a backend (threads,
  processes, or any module with the ``run.Backend`` protocol: a new backend is a
  new module and an entry in ``_BACKENDS``, nothing in the Loader).
- ``generators.StreamFeed``: generator streams, interleaved.

Length: an indexed feed reads the source's length again at every epoch start (Keras
and torch do the same), so a source that grows, or a ``Sequence`` whose
``on_epoch_end`` changes its number of batches, is never silently truncated. The
plan is rebuilt from that epoch on (``plan.py``) and the change is reported.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any, Protocol

from stoker._engine import pickling
from stoker._engine.fetch import Fetcher
from stoker._engine.handoff import HandoffRun
from stoker._engine.plan import Plan

# Loaded with stoker, not at the first ``iter()`` of a process loader: the modules
# take about 5 ms to load (their NamedTuples and dataclasses are built at import),
# which would otherwise count against the time to the first batch (issue 15).
from stoker._engine.process.backend import ProcessBackend
from stoker._engine.run import Backend, EpochRun, Task
from stoker._errors import ConfigError
from stoker._options import LoaderOptions, default_start_method

_log = logging.getLogger("stoker")
Counters = dict[str, Any]
# Stopping workers that hold an old seed, when a resume brings another.
_RESTART_TIMEOUT_S = 10.0


class Feed(Protocol):
    """One kind of source, as the Loader drives it."""

    kind: str  # "indexed" or "generator": recorded in the state
    source: Any  # what the user gave (its ``on_epoch_*`` hooks are called)

    def epoch_length(self, epoch: int) -> int:
        """Batches in ``epoch``, from the source's length now (call between epochs)."""

    def length_change(self) -> tuple[int, int] | None:
        """``(old, new)`` once after the source's length changed, else None."""

    def start(self, epoch: int, positions: list[int], delivered: set[int]) -> EpochRun:
        """Start computing ``positions`` of ``epoch``; returns at once. ``delivered``
        is the loader's set of this epoch's positions handed to the loop, which
        grows as the loop takes batches (a move mid-epoch counts from it)."""

    def state(self) -> dict[str, Any]:
        """The feed's part of the loader's state (plain JSON values)."""

    def check_state(self, state: dict[str, Any]) -> None:
        """Raise ``ConfigError`` if ``state`` was not taken from a feed like this."""

    def restore(self, state: dict[str, Any], seed: int) -> None:
        """Continue from ``state`` (already checked), with the loader's ``seed``."""

    def close(self, timeout_s: float) -> None:
        """Stop every worker; idempotent."""


def source_length(source: Any) -> int:
    """``len(source)``, or ``ConfigError`` saying what the source must provide."""
    if inspect.isgenerator(source) or (
        hasattr(source, "__next__") and not hasattr(source, "__getitem__")
    ):
        raise ConfigError(
            f"{type(source).__name__} is a generator/iterator: stoker cannot index it. "
            "Use stoker.Loader.from_generator(factory, steps_per_epoch=...)"
        )
    name = type(source).__name__
    if not hasattr(source, "__getitem__"):
        raise ConfigError(
            f"source of type {name} has no __getitem__: a source must have __len__ "
            "and __getitem__(i) returning batch i (or sample i with batch_size=...); "
            "for a generator use stoker.Loader.from_generator"
        )
    if hasattr(type(source), "__len__"):
        n = type(source).__len__(source)  # the value itself: len() hides a float
        what = "len(source)"
    else:
        try:
            n = source.num_batches  # Keras 3 PyDataset without __len__
        except (AttributeError, NotImplementedError):
            raise ConfigError(
                f"source of type {name} has no length: give it __len__ (for a Keras "
                "PyDataset, a num_batches property), or wrap an endless source with "
                "stoker.Loader.from_generator(..., steps_per_epoch=N)"
            ) from None
        what = "source.num_batches"
        if n is None:
            raise ConfigError(
                f"{what} is None (an endless {name}): stoker needs the number of "
                "batches; return it from num_batches, or wrap the source with "
                "stoker.Loader.from_generator(..., steps_per_epoch=N)"
            )
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(
            f"{what} returned {n!r} (a {type(n).__name__}): expected a whole number "
            f">= 0 of {'samples' if what == 'len(source)' else 'batches'}; return an "
            "int (e.g. math.ceil(...) or //, not /)"
        )
    return n


def _thread_backend(
    fetcher: Fetcher, opts: LoaderOptions, budget: int, name: str, counters: Counters
) -> Backend:
    from stoker._engine.threads import ThreadBackend

    return ThreadBackend(fetcher, opts.workers, budget, name)


def _process_backend(
    fetcher: Fetcher, opts: LoaderOptions, budget: int, name: str, counters: Counters
) -> Backend:
    from stoker._engine.tune import usable_cores

    # workers="auto" on processes: room for one per usable core, started on demand.
    auto = {"workers", "use_multiprocessing"} & set(opts.auto)
    limit = usable_cores() if auto else opts.workers
    return ProcessBackend(fetcher, opts, budget, name, limit)


def _ray_backend(
    fetcher: Fetcher, opts: LoaderOptions, budget: int, name: str, counters: Counters
) -> Backend:
    from stoker._engine.ray import RayBackend  # Ray is big: only when asked for

    return RayBackend(fetcher, opts, budget, name, counters)


# LoaderOptions.mode -> factory(fetcher, options, budget, name, counters) of its
# backend; ``counters`` is where a backend keeps figures for ``stats.summary()``. A new
# backend is a module with the run.Backend protocol and one line here.
_BACKENDS = {
    "thread": _thread_backend,
    "process": _process_backend,
    "ray": _ray_backend,
}


class IndexedFeed:
    """A ``__getitem__`` source on a backend (module docstring)."""

    kind = "indexed"

    def __init__(self, source: Any, opts: LoaderOptions, seed: int, name: str) -> None:
        self.source = source
        self._opts = opts
        self._name = name
        self._n = source_length(source)
        self._change: tuple[int, int] | None = None
        self._backend: Backend | None = None
        self.counters: Counters = {}  # the backend's own figures (Ray: retries)
        self._size: tuple[int, int] | None = None  # (workers, budget) once tuned
        self._switch: tuple[str, int, int] | None = None  # (mode, workers, budget)
        self.mode = opts.mode  # the backend's mode in force (auto may change it)
        # use_multiprocessing="auto": the epoch's run, which can move to the other
        # mode in its middle (handoff.py); the backend it leaves until its last
        # batch is in; tokens the new run waits for while the old one's are held.
        self._movable = "use_multiprocessing" in opts.auto
        self._run: HandoffRun | None = None
        self._leaving: Backend | None = None
        self._credit = 0
        self._epoch = 0  # the epoch of ``_run``
        self.fetcher = Fetcher(source, opts.batch_size, seed)
        self._set_plan(seed, first_epoch=0)

    def _set_plan(self, seed: int, first_epoch: int) -> None:
        o = self._opts
        self.plan = Plan(
            self._n,
            seed=seed,
            shuffle=o.shuffle,
            batch_size=o.batch_size,
            drop_last=o.drop_last,
            steps_per_epoch=o.steps_per_epoch,
            shard=o.shard,
            first_epoch=first_epoch,
        )

    @property
    def backend(self) -> Backend:
        """The backend, started on first use."""
        if self._backend is None:
            o = self._opts
            budget = o.max_queue_size + o.workers
            make = _BACKENDS[o.mode]
            self._backend = make(self.fetcher, o, budget, self._name, self.counters)
            if self._size is not None:  # tuned before a restart (a resume's seed)
                self.resize(*self._size)
        return self._backend

    @property
    def resizable(self) -> bool:
        """The backend can change its worker count while running (``resize``)."""
        return self._opts.mode in ("thread", "process")

    def resize(self, workers: int, budget: int) -> None:
        """Run ``workers`` workers with ``budget`` tokens from the next batch on.

        Threads and processes have ``resize``; a backend without it (a third one
        that does not size itself) keeps its size, and ``resizable`` says so.
        """
        self._size = (workers, budget)
        resize = getattr(self._backend, "resize", None)
        if resize is not None:
            resize(workers, max(0, budget - self._credit))

    def epoch_length(self, epoch: int) -> int:
        n = source_length(self.source)
        if n != self._n:
            _log.debug(
                "stoker: %s: the source's length changed from %d to %d; epoch %d "
                "uses the new length",
                self._name,
                self._n,
                n,
                epoch,
            )
            self._change = (self._n, n)
            self._n = n
            self._set_plan(self.plan.seed, first_epoch=epoch)
        return self.plan.epoch_length

    def length_change(self) -> tuple[int, int] | None:
        change, self._change = self._change, None
        return change

    def switch_mode(self, mode: str, workers: int, budget: int) -> str:
        """Run ``workers`` of ``mode`` (``use_multiprocessing="auto"``).

        During an epoch the tasks not yet started move to the new backend, which
        starts them once the old workers' last batches are in (``handoff.py``);
        otherwise, or while an earlier move is still settling,
        from the next epoch's start. Returns ``"now"``, ``"next epoch"``, or
        ``"refused"`` (the new backend would not start here: the old one stays,
        and a warning says why).
        """
        self._switch = (mode, workers, budget)
        run = self._run
        if run is None or not run.can_move:
            return "next epoch"
        leaving = self._backend
        if not self._switch_now(close_old=False):
            return "refused"
        rest, owed = run.hand_over()
        self._credit = min(owed, budget) if rest else 0
        self.resize(workers, budget)  # less what the old run still holds
        self._leaving = leaving
        epoch = self._epoch

        def start() -> EpochRun | None:
            if not rest:
                return None
            new = self.backend.start_epoch(epoch, rest)
            start_all = getattr(self.backend, "start_all", None)
            if start_all is not None:
                start_all()
            return new

        run.move_to(start, len(rest), self._repay, self._retire)
        return "now"

    def _repay(self, owed: int) -> None:
        """The loop took one of the old run's batches: ``owed`` are left."""
        if owed < self._credit:
            self._credit = owed
            if self._size is not None:
                self.resize(*self._size)

    def _retire(self) -> None:
        """The old run's last batch is in: its backend goes."""
        self.mode = self._opts.mode
        leaving, self._leaving = self._leaving, None
        if leaving is not None:
            leaving.close(_RESTART_TIMEOUT_S)

    def can_cross(self) -> str | None:
        """None if process workers can take the source, else why not."""
        method = self._opts.start_method or default_start_method()
        if method == "fork":
            return None  # forked workers inherit the source as it is
        if pickling.culprit(self.source, "source") is None:
            return None
        return pickling.describe(self.source, "source")

    def _switch_now(self, close_old: bool = True) -> bool:
        """Make the backend ``switch_mode`` asked for; False if it refused (then
        the old one stays, and says why). ``mode`` says which runs: the caller
        sets it when the new backend takes over."""
        assert self._switch is not None
        mode, workers, budget = self._switch
        self._switch = None
        old, old_backend = self._opts, self._backend
        self._opts = dataclasses.replace(old, use_multiprocessing=mode == "process")
        self._backend, self._size = None, (workers, budget)
        try:
            self.backend  # noqa: B018  (started here, so a refusal is caught here)
        except ConfigError as exc:
            _log.warning("stoker: %s: staying on %ss: %s", self._name, old.mode, exc)
            self._opts, self._backend = old, old_backend
            return False
        if old_backend is not None and close_old:
            old_backend.close(_RESTART_TIMEOUT_S)
        return True

    def start(self, epoch: int, positions: list[int], delivered: set[int]) -> EpochRun:
        self._settle()
        if self._switch is not None:
            self._switch_now()
        self.mode = self._opts.mode
        keys = self.plan.keys(epoch)
        tasks: list[Task] = [(p, keys[p]) for p in positions]
        run = self.backend.start_epoch(epoch, tasks)
        if not self._movable:
            return run
        self._epoch = epoch
        self._run = HandoffRun(run, len(tasks), delivered)
        return self._run

    def _settle(self) -> None:
        """An epoch cut short in a move: the old backend goes, the new one gets its
        whole budget."""
        self._run = None
        if self._leaving is not None:
            self._retire()
        if self._credit:
            self._credit = 0
            if self._size is not None:
                self.resize(*self._size)

    def state(self) -> dict[str, Any]:
        o = self._opts
        return {
            "length": self._n,
            "length_since": self.plan.first_epoch,
            "epoch_length": self.plan.epoch_length,
            "shuffle": o.shuffle,
            "batch_size": o.batch_size,
            "drop_last": o.drop_last,
            "steps_per_epoch": o.steps_per_epoch,
            "shard": list(o.shard) if o.shard else None,
        }

    def check_state(self, state: dict[str, Any]) -> None:
        mine = self.state()
        for key in ("length", "shuffle", "batch_size", "drop_last", "steps_per_epoch"):
            _same(key, state.get(key), mine[key])
        _same("shard", state.get("shard"), mine["shard"])

    def restore(self, state: dict[str, Any], seed: int) -> None:
        if seed != self.fetcher.seed:
            # Workers hold the fetcher with its seed: start them again with the new.
            self.close(_RESTART_TIMEOUT_S)
            self._backend = None
            self.fetcher = Fetcher(self.source, self._opts.batch_size, seed)
        self._set_plan(seed, first_epoch=int(state.get("length_since", 0)))

    def close(self, timeout_s: float) -> None:
        if self._leaving is not None:
            self._leaving.close(timeout_s)
            self._leaving = None
        if self._backend is not None:
            self._backend.close(timeout_s)


def _same(key: str, saved: Any, mine: Any) -> None:
    if saved != mine:
        hint = (
            "the source has a different length now"
            if key == "length"
            else "resume with the same options"
        )
        raise ConfigError(
            f"the state was saved with {key}={saved!r} but this loader has "
            f"{key}={mine!r}: {hint} (resume with the same source and options)"
        )


class Resources:
    """What must be released when the loader goes: the finalizer holds only this."""

    def __init__(self, feed: Feed, timeout_s: float) -> None:
        self.feed: Feed | None = feed
        self.timeout_s = timeout_s
        self.run: EpochRun | None = None

    def release(self) -> None:
        # Stop the run, then close the feed before joining the run: process workers
        # stop within a second instead of first finishing the batches they hold.
        if self.run is not None:
            self.run.stop()
        if self.feed is not None:
            self.feed.close(self.timeout_s)
            self.feed = None
        if self.run is not None:
            self.run.join(self.timeout_s)
            self.run = None
