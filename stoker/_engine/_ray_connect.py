"""Finding the Ray cluster a loader's workers run on, and sizing the workers.

Rule: a loader joins the cluster this process is already connected to; else the one
``RayOptions.address`` names (``"auto"`` finds one started with ``ray start`` on this
machine); else ``RAY_ADDRESS``; else it starts a new local Ray instance with this
machine's CPUs, once per process, and says so once through the
``stoker`` logger. A local instance is kept until the process exits (Ray shuts it
down then), because starting one costs seconds and a training script typically
builds several loaders (train, validation). Ray's processes are tied to this
process, so a driver killed with SIGKILL takes them with it.

Why this order: a user who called ``ray.init`` themselves chose the cluster already;
an address given to stoker is an explicit request; ``RAY_ADDRESS`` is how Ray's job
submission tells a script where it runs.

``import ray`` happens here and only when a Ray loader starts its first epoch, so
``import stoker`` stays fast and does not need Ray.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from stoker._errors import ConfigError
from stoker._ray_options import RAY_INSTALL, RayOptions

_log = logging.getLogger("stoker")
_lock = threading.Lock()


def load_ray() -> Any:
    """The ``ray`` module, or a ConfigError naming the pip command."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"backend='ray' needs Ray, which cannot be imported ({exc}): {RAY_INSTALL}"
        ) from exc
    return ray


def connect(ray: Any, opts: RayOptions) -> None:
    """Make sure this process is connected to a Ray cluster (module docstring)."""
    with _lock:  # two loaders starting at once must not both call ray.init
        if ray.is_initialized():
            return
        address = opts.address or os.environ.get("RAY_ADDRESS") or None
        common: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": True,
        }
        if opts.runtime_env is not None:
            common["runtime_env"] = opts.runtime_env
        if address is not None:
            try:
                ray.init(address=address, **common)
            except ConnectionError as exc:
                raise ConfigError(
                    f"cannot join the Ray cluster at {address!r}: {exc}. Start it "
                    "with `ray start --head` (see docs/ray.md), or pass "
                    "RayOptions(address=None) to run on a local Ray instance"
                ) from exc
            _log.info("stoker: joined the Ray cluster at %s", address)
            return
        cpus = os.cpu_count() or 1
        t0 = time.perf_counter()
        # address="local": a new instance of our own, not whatever `ray start`
        # left running on this machine (what a bare ray.init() would join).
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, **common)
        _log.warning(
            "stoker: started a local Ray instance with %d CPUs in %.1f s (kept until "
            "this process exits); to use a cluster, pass "
            "stoker.RayOptions(address=...) or set RAY_ADDRESS",
            cpus,
            time.perf_counter() - t0,
        )


def cpus_per_worker(ray: Any, opts: RayOptions, workers: int) -> float:
    """``num_cpus`` for each worker actor (``RayOptions.num_cpus`` explains None)."""
    if opts.num_cpus is not None:
        return float(opts.num_cpus)
    total = float(ray.cluster_resources().get("CPU", 0.0))
    if total >= workers:
        return 1.0
    # Ray accepts 4 decimal places; round down so that every worker fits.
    return max(int(total / workers * 10_000) / 10_000, 0.0001)


def strategy(opts: RayOptions) -> str:
    """Ray's scheduling strategy for ``RayOptions.placement``."""
    return "SPREAD" if opts.placement == "spread" else "DEFAULT"


def elsewhere(
    ray: Any, opts: RayOptions, cpus: float, avoid: str, busy: dict[str, int]
) -> Any:
    """A strategy that keeps a replacement actor off node ``avoid``.

    A node that was just lost can still look alive to Ray for seconds (until its
    heartbeats are missed), so a replacement placed by Ray alone may land on it and
    die again. This picks the live node with the needed resources that holds the
    fewest of the loader's workers (``busy``: node id -> workers), as a soft
    preference: when it is full, Ray places the actor anywhere.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    need = {"CPU": cpus, **opts.resources}
    nodes = [
        n["NodeID"]
        for n in ray.nodes()
        if n.get("Alive")
        and n["NodeID"] != avoid
        and all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in need.items())
    ]
    if not nodes:
        return strategy(opts)
    target = min(nodes, key=lambda node: busy.get(node, 0))
    return NodeAffinitySchedulingStrategy(node_id=target, soft=True)


def demand(opts: RayOptions, cpus: float) -> str:
    """What one worker asks the cluster for, in words (for placement errors)."""
    parts = [f"num_cpus={cpus:g}"]
    parts += [f"{k}={v:g}" for k, v in sorted(opts.resources.items())]
    return ", ".join(parts)
