"""issue 17: the Ray instance the tests share, and what they check on it.

One Ray head with 2 CPUs is started for the whole session (starting one costs about
4 s) by ``ray.cluster_utils.Cluster``, so that the multi-node tests can add worker
nodes to the same cluster and remove them again instead of starting another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

# Actors of a closed loader are dead at once; this only bounds a slow GCS.
_ACTORS_GONE_S = 10.0


def start_cluster() -> Iterator[Any]:
    """Yield a Ray cluster (head: 2 CPUs) this process is connected to; stop it."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False},
    )
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def live_actors() -> list[str]:
    """Ids of this job's actors that are not dead (starting, alive, restarting)."""
    import ray

    table = ray._private.state.actors()
    return [a for a, info in table.items() if info["State"] != "DEAD"]


def wait_no_actors(timeout_s: float = _ACTORS_GONE_S) -> list[str]:
    """Wait until no actor is left; returns those still there after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := live_actors()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
