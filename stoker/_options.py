"""Loader options as one validated, frozen value.

Every bad value is rejected here, once, with the value and the fix in the message, so
the engine can trust what it gets. Each default says where it came from.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from typing import Any

from stoker._errors import ConfigError
from stoker._ray_options import RAY_INSTALL, RayOptions, ray_installed

# Keras' PyDataset default is workers=1, which leaves an input-bound loop waiting; 4
# threads hide most I/O latency on small machines without oversubscribing them.
DEFAULT_WORKERS = 4
# Keras' max_queue_size default, kept so ported code behaves the same.
DEFAULT_MAX_QUEUE_SIZE = 10
# Where workers="auto" starts: two workers show at once whether a second one pays.
AUTO_START_WORKERS = 2
# max_memory's default: a quarter of the memory available when the loader starts
# leaves the model, the framework and the rest of the machine three quarters.
DEFAULT_MEMORY_FRACTION = 0.25
# trace=: the last this many batches are kept (about 100 bytes each in the ring).
DEFAULT_TRACE_BATCHES = 10_000
START_METHODS = ("fork", "forkserver", "spawn")
# Options that only process workers use. The rule, for these and every option: one
# that would have no effect with the settings given is refused with ConfigError (as
# drop_last without batch_size is), never silently ignored.
PROCESS_ONLY = ("start_method", "max_queue_bytes", "reseed_globals")
# issue 17 (Ray backend): the values of ``backend=``; None lets use_multiprocessing
# decide between threads and processes, as before.
BACKENDS = ("ray",)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
    """The validated settings of one :class:`stoker.Loader` (see its docstring)."""

    workers: int = DEFAULT_WORKERS
    use_multiprocessing: bool = False
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    shuffle: bool = False
    seed: int | None = None
    batch_size: int | None = None
    drop_last: bool = False
    steps_per_epoch: int | None = None
    ordered: bool = True
    timeout: float | None = None
    start_method: str | None = None
    max_queue_bytes: int | None = None
    shard: tuple[int, int] | None = None
    reseed_globals: bool | None = None
    max_memory: int | float | None = None
    trace: str | None = None
    trace_batches: int = DEFAULT_TRACE_BATCHES
    # Settings given as "auto" (filled in by __post_init__, never passed): the
    # fields above then hold the starting value the autotuner moves from.
    auto: tuple[str, ...] = ()
    backend: str | None = None  # issue 17: "ray", or None (use_multiprocessing)
    ray: RayOptions | None = None  # issue 17: implies backend="ray"

    def __post_init__(self) -> None:
        auto = list(self.auto)  # kept by dataclasses.replace (a mode switch)
        if self.use_multiprocessing == "auto":  # type: ignore[comparison-overlap]
            # Threads first; processes when the work turns out to hold the GIL.
            auto.append("use_multiprocessing")
            object.__setattr__(self, "use_multiprocessing", False)
        if self.workers == "auto":  # type: ignore[comparison-overlap]
            auto.append("workers")
            # Processes start at one: each costs a start-up and memory, and the
            # second starts as soon as the consumer waits (process/pool.py).
            start = 1 if self.use_multiprocessing is True else AUTO_START_WORKERS
            object.__setattr__(self, "workers", start)
        if self.max_queue_size == "auto":  # type: ignore[comparison-overlap]
            auto.append("max_queue_size")
            object.__setattr__(self, "max_queue_size", DEFAULT_MAX_QUEUE_SIZE)
        object.__setattr__(self, "auto", tuple(auto))
        if not _is_int(self.workers) or self.workers < 1:
            raise ConfigError(
                f"workers={self.workers!r}: expected a whole number >= 1 "
                "(the number of threads or processes computing batches) or 'auto' "
                "(stoker sizes the pool while it runs)"
            )
        if not _is_int(self.max_queue_size) or self.max_queue_size < 1:
            raise ConfigError(
                f"max_queue_size={self.max_queue_size!r}: expected a whole number >= 1 "
                "(finished batches allowed to wait for the training loop) or 'auto'"
            )
        self._check_memory_and_trace()
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ConfigError(
                f"seed={self.seed!r}: expected None or a whole number >= 0"
            )
        if self.batch_size is not None and (
            not _is_int(self.batch_size) or self.batch_size < 1
        ):
            raise ConfigError(
                f"batch_size={self.batch_size!r}: expected None (source[i] is already "
                "a batch) or a whole number >= 1 (source[i] is one sample)"
            )
        if self.drop_last and self.batch_size is None and self.shard is None:
            raise ConfigError(
                "drop_last=True needs batch_size (or shard): without batch_size, "
                "source[i] is already a whole batch, so there is no last partial "
                "batch to drop"
            )
        if self.steps_per_epoch is not None and (
            not _is_int(self.steps_per_epoch) or self.steps_per_epoch < 1
        ):
            raise ConfigError(
                f"steps_per_epoch={self.steps_per_epoch!r}: expected None (one full "
                "pass per epoch) or a whole number >= 1"
            )
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not self.timeout > 0
        ):
            raise ConfigError(
                f"timeout={self.timeout!r}: expected None (wait forever, but still "
                "notice dead workers) or a number of seconds > 0"
            )
        self._check_processes()
        self._check_shard()
        self._check_ray()

    def _check_ray(self) -> None:
        """issue 17: ``backend=`` and ``ray=`` (the Ray backend)."""
        if self.backend is not None and self.backend not in BACKENDS:
            raise ConfigError(
                f"backend={self.backend!r}: expected None (threads, or processes with "
                "use_multiprocessing=True) or 'ray'"
            )
        if self.ray is not None and not isinstance(self.ray, RayOptions):
            raise ConfigError(
                f"ray={self.ray!r}: expected stoker.RayOptions(...), e.g. "
                "ray=stoker.RayOptions(address='auto')"
            )
        if self.mode != "ray":
            return
        if self.use_multiprocessing:
            raise ConfigError(
                "backend='ray' with use_multiprocessing=True: Ray runs the workers in "
                "its own processes; drop use_multiprocessing"
            )
        if self.start_method is not None or self.max_queue_bytes is not None:
            raise ConfigError(
                "start_method and max_queue_bytes apply to use_multiprocessing=True; "
                "with backend='ray' leave them unset (Ray starts its own workers and "
                "keeps batches in its object store)"
            )
        if not ray_installed():
            raise ConfigError(
                f"backend='ray' needs Ray, which is not installed: {RAY_INSTALL}"
            )

    def _check_memory_and_trace(self) -> None:
        m = self.max_memory
        fraction = isinstance(m, float) and 0 < m <= 1
        if m is not None and not fraction and (not _is_int(m) or m < 1):
            raise ConfigError(
                f"max_memory={m!r}: expected None (a quarter of the available "
                "memory), a number of bytes >= 1 (e.g. 2 * 1024**3), or a fraction "
                "of the available memory between 0 and 1 (e.g. 0.5)"
            )
        if self.trace is not None and not isinstance(self.trace, (str, os.PathLike)):
            raise ConfigError(
                f"trace={self.trace!r}: expected None or a file path for the "
                "Chrome/Perfetto trace, e.g. trace='run.trace.json'"
            )
        if not _is_int(self.trace_batches) or self.trace_batches < 1:
            raise ConfigError(
                f"trace_batches={self.trace_batches!r}: expected a whole number >= 1 "
                "(the trace keeps the last this many batches)"
            )

    def _check_processes(self) -> None:
        thread_only = not self.use_multiprocessing and self.mode == "thread"
        if thread_only and "use_multiprocessing" not in self.auto:  # Ray: _check_ray
            given = [k for k in PROCESS_ONLY if getattr(self, k) is not None]
            if given:
                raise ConfigError(
                    f"{given[0]}={getattr(self, given[0])!r} applies to process "
                    "workers only and these are threads: pass use_multiprocessing=True"
                    f", or leave {given[0]} out"
                )
        if not isinstance(self.use_multiprocessing, bool):
            raise ConfigError(
                f"use_multiprocessing={self.use_multiprocessing!r}: expected True "
                "(process workers) or False (threads)"
            )
        if self.start_method is not None:
            if self.start_method not in START_METHODS:
                raise ConfigError(
                    f"start_method={self.start_method!r}: expected one of "
                    f"{', '.join(START_METHODS)} or None for the default"
                )
            if self.start_method not in multiprocessing.get_all_start_methods():
                raise ConfigError(
                    f"start_method={self.start_method!r} is not available on this "
                    f"platform; use one of {multiprocessing.get_all_start_methods()}"
                )
        if self.max_queue_bytes is not None and (
            not _is_int(self.max_queue_bytes) or self.max_queue_bytes < 1
        ):
            raise ConfigError(
                f"max_queue_bytes={self.max_queue_bytes!r}: expected None or a whole "
                "number of bytes >= 1"
            )

    def _check_shard(self) -> None:
        if self.shard is None:
            return
        shard = self.shard
        ok = (
            isinstance(shard, tuple)
            and len(shard) == 2
            and all(_is_int(v) for v in shard)
            and shard[1] >= 1
            and 0 <= shard[0] < shard[1]
        )
        if not ok:
            raise ConfigError(
                f"shard={shard!r}: expected (index, count) with 0 <= index < count, "
                "e.g. shard=(rank, world_size); stoker.shard_from_env() reads them"
            )

    @property
    def mode(self) -> str:
        """``"ray"``, ``"process"`` or ``"thread"``."""
        if self.backend == "ray" or self.ray is not None:  # issue 17
            return "ray"
        return "process" if self.use_multiprocessing else "thread"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, for observers and the tracker."""
        out = dataclasses.asdict(self)
        out["mode"] = self.mode
        out["shard"] = list(self.shard) if self.shard else None
        out["auto"] = list(self.auto)
        out["trace"] = None if self.trace is None else os.fspath(self.trace)
        # issue 17: settings of thread and process loaders stay as they were.
        if self.mode == "ray":
            out["backend"] = "ray"
        else:
            del out["ray"], out["backend"]
        return out

    def describe(self, seed: int, length: int, source: Any) -> dict[str, Any]:
        """What observers are told when a loader starts: the options in force (the
        start method resolved), the seed, the epoch length and the source's type."""
        out = self.to_dict()
        out.update(
            seed=seed,
            seed_given=self.seed is not None,
            length=length,
            source_type=type(source).__name__,
        )
        if self.use_multiprocessing:
            out["start_method"] = self.start_method or default_start_method()
        files = getattr(source, "files", None)  # a source over files: the tracker
        if isinstance(files, (list, tuple)):  # fingerprints them (by reference here)
            out["source_files"] = files
        return out


def _jax_running() -> bool:
    """Whether JAX's runtime (and its fork warning) has started in this process."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_at_fork_handler_installed", False))


def default_start_method() -> str:
    """The process start method stoker uses when none is given.

    ``fork`` where available (Linux), as Keras 2 and torch's DataLoader do: a forked
    worker starts in milliseconds, shares the parent's memory copy-on-write, and
    imports nothing again, so scripts without a main guard and sources defined in
    ``__main__`` work. Measured in a script that imports Keras and torch (see
    docs/benchmarks.md), ``forkserver`` cost about 2 s per worker before the first
    batch (each worker imports the script, Keras and torch again) and several
    hundred MB of memory per worker. What makes forking a threaded program risky is
    handled in the worker (``_engine/process/worker.py``: one intra-op thread, fresh
    seeds, the consumer's fds closed). ``spawn`` elsewhere.

    Except when JAX has started its runtime in this process: it then runs threads of
    its own and warns at every ``os.fork()`` that the child may deadlock, so its users
    get ``forkserver`` (workers forked from a clean server process: no warning,
    docs/jax.md). Importing JAX is not enough (Keras imports part of it whatever its
    backend); JAX installs its fork warning when its backends start, and that is what
    is checked. Overridable with the ``STOKER_START_METHOD`` environment variable or
    ``start_method=``.
    """
    env = os.environ.get("STOKER_START_METHOD")
    if env:
        if env not in START_METHODS:
            raise ConfigError(
                f"STOKER_START_METHOD={env!r}: expected one of "
                f"{', '.join(START_METHODS)}"
            )
        return env
    methods = multiprocessing.get_all_start_methods()
    if _jax_running() and "forkserver" in methods:
        return "forkserver"
    return "fork" if "fork" in methods else "spawn"
