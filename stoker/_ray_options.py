"""The Ray backend's options (``Loader(..., ray=stoker.RayOptions(...))``).

A frozen, validated value like ``LoaderOptions`` (layer 0): where the workers run,
what each reserves, how they are placed, and whether a lost batch is retried. Ray
itself is imported only by the backend (``_engine/ray.py``), never here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from typing import Any

from stoker._errors import ConfigError

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
