"""issue 17: with ``RayOptions(retry=True)``, a lost node costs a restart (slow).

Its own module, so that its two fresh worker nodes are the only ones with the
resource (the nodes of test_ray_cluster.py are gone by then).
"""

from __future__ import annotations

import pytest

import stoker
from tests import sources_ray
from tests.integration.test_ray_cluster import NODE_RESOURCE, add_two_nodes

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def fresh_two_nodes(ray_cluster):
    yield from add_two_nodes(ray_cluster)


def on_workers(**options) -> stoker.RayOptions:
    return stoker.RayOptions(resources={NODE_RESOURCE: 1}, **options)


@pytest.mark.slow
def test_with_retry_a_lost_node_costs_only_a_restart(fresh_two_nodes):
    cluster, nodes = fresh_two_nodes
    src = sources_ray.WhereAmI(n=30, sleep=0.1)
    with stoker.Loader(
        src, workers=2, ray=on_workers(retry=True), timeout=60
    ) as loader:
        it = iter(loader)
        x, first, _ = next(it)
        got = [int(x[0])]
        victim = next(n for n in nodes if n.node_id == first)
        cluster.remove_node(victim, allow_graceful=False)
        later = []
        for x, node, _ in it:
            got.append(int(x[0]))
            later.append(node)
        backend = loader.stats.summary()["backend"]
    assert got == list(range(30))  # every batch once, in order
    assert later[-1] != victim.node_id  # the rest came from the surviving node
    assert backend["ray_retries"] >= 1 and backend["ray_restarts"] == 1
