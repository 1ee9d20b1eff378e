"""Loader options as one validated, frozen value.

Every bad value is rejected here, once, with the value and the fix in the message, so
the engine can trust what it gets. Each default says where it came from.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import multiprocessing
import os
import sys
from typing import Any

from stoker._errors import ConfigError

# Keras' PyDataset default is workers=1, which leaves an input-bound loop waiting; 4
# threads hide most I/O latency on small machines without oversubscribing them.
DEFAULT_WORKERS = 4
# Keras' max_queue_size default, kept so ported code behaves the same.
DEFAULT_MAX_QUEUE_SIZE = 10
START_METHODS = ("fork", "forkserver", "spawn")
# issue 17 (Ray backend): the values of ``backend=``; None lets use_multiprocessing
# decide between threads and processes, as before.
BACKENDS = ("ray",)
PLACEMENTS = ("spread", "pack")
RAY_INSTALL = "pip install 'stoker[ray]'"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray backend runs its workers (``Loader(..., ray=...)``).

    Attributes:
        address: the cluster to join: ``"auto"``, ``"ray://host:10001"`` or
            ``"host:6379"``. None: the cluster this process is already connected to,
            else ``RAY_ADDRESS``, else a local Ray instance started for the process.
        num_cpus: CPUs each worker actor reserves. None: 1, or less when the
            cluster has fewer CPUs than workers (an I/O-bound source wants more
            workers than CPUs); CPU-bound sources should keep 1.
        resources: custom Ray resources each worker reserves, e.g. ``{"decoder":
            1}`` to keep workers on nodes started with ``--resources``.
        placement: ``"spread"`` puts workers on as many nodes as possible (Ray's
            SPREAD strategy); ``"pack"`` fills the nearest node first (Ray's
            default), which keeps batches on the training host when it has room.
        retry: when a worker or its node dies, start a new worker and compute the
            lost batches once more (counted in ``loader.stats.summary()``) instead of
            raising ``WorkerCrashed``.
        start_timeout_s: how long workers may take to be placed and started before
            the loader gives up and says which resources were missing.
        runtime_env: a Ray runtime environment for the workers (pip packages,
            working directory), passed to Ray unchanged.
    """

    address: str | None = None
    num_cpus: float | None = None
    resources: dict[str, float] = dataclasses.field(default_factory=dict)
    # Spread by default: the reason to use Ray is CPUs on other machines, and Ray's
    # default strategy fills the driver's node first.
    placement: str = "spread"
    retry: bool = False
    # A cold worker node starts an actor in a few seconds; a minute also covers a
    # cluster that pulls a runtime_env before starting it.
    start_timeout_s: float = 60.0
    runtime_env: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.address is not None and (
            not isinstance(self.address, str) or not self.address
        ):
            raise ConfigError(
                f"RayOptions(address={self.address!r}): expected None (this process's "
                "cluster, RAY_ADDRESS or a local instance), 'auto', or "
                "'ray://host:10001'"
            )
        if self.num_cpus is not None and (
            isinstance(self.num_cpus, bool)
            or not isinstance(self.num_cpus, (int, float))
            or not (self.num_cpus >= 0 and math.isfinite(self.num_cpus))
        ):
            raise ConfigError(
                f"RayOptions(num_cpus={self.num_cpus!r}): expected None or a number of "
                "CPUs >= 0 per worker (fractions allowed, e.g. 0.25 for I/O-bound "
                "sources)"
            )
        if not isinstance(self.resources, dict) or not all(
            isinstance(k, str)
            and not isinstance(v, bool)
            and isinstance(v, (int, float))
            and v > 0
            for k, v in self.resources.items()
        ):
            raise ConfigError(
                f"RayOptions(resources={self.resources!r}): expected a dict of "
                'resource name -> amount > 0 per worker, e.g. {"decoder": 1}'
            )
        if {"CPU", "GPU"} & set(self.resources):
            raise ConfigError(
                "RayOptions(resources=...) names CPU or GPU: give CPUs as num_cpus=; "
                "GPUs are not used by the Ray backend"
            )
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"RayOptions(placement={self.placement!r}): expected one of "
                f"{', '.join(PLACEMENTS)}"
            )
        if not isinstance(self.retry, bool):
            raise ConfigError(f"RayOptions(retry={self.retry!r}): expected True/False")
        if (
            isinstance(self.start_timeout_s, bool)
            or not isinstance(self.start_timeout_s, (int, float))
            or not self.start_timeout_s > 0
        ):
            raise ConfigError(
                f"RayOptions(start_timeout_s={self.start_timeout_s!r}): expected a "
                "number of seconds > 0"
            )
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise ConfigError(
                f"RayOptions(runtime_env={self.runtime_env!r}): expected None or a "
                "dict, as ray.init(runtime_env=...) takes"
            )


def ray_installed() -> bool:
    """Whether ``import ray`` can work, without importing it (it takes seconds)."""
    if "ray" in sys.modules:
        return sys.modules["ray"] is not None
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


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
    backend: str | None = None  # issue 17: "ray", or None (use_multiprocessing)
    ray: RayOptions | None = None  # issue 17: implies backend="ray"

    def __post_init__(self) -> None:
        if self.workers == "auto":
            raise ConfigError(
                "workers='auto' is not available in this version; pass a number of "
                "workers, e.g. workers=8 for I/O-bound sources on threads"
            )
        if not _is_int(self.workers) or self.workers < 1:
            raise ConfigError(
                f"workers={self.workers!r}: expected a whole number >= 1 "
                "(the number of threads or processes computing batches)"
            )
        if not _is_int(self.max_queue_size) or self.max_queue_size < 1:
            raise ConfigError(
                f"max_queue_size={self.max_queue_size!r}: expected a whole number >= 1 "
                "(finished batches allowed to wait for the training loop)"
            )
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

    def _check_processes(self) -> None:
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
        # issue 17: settings of thread and process loaders stay as they were.
        if self.mode == "ray":
            out["backend"] = "ray"
        else:
            del out["ray"], out["backend"]
        return out


def default_start_method() -> str:
    """The process start method stoker uses when none is given.

    ``forkserver`` where available (Linux): forking a process that already runs threads
    (a training framework always does) can deadlock in the child, which is why Python
    3.14 moved away from ``fork`` as the default. ``spawn`` elsewhere. Overridable with
    the ``STOKER_START_METHOD`` environment variable.
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
    return "forkserver" if "forkserver" in methods else "spawn"
