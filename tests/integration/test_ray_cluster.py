"""issue 17: the Ray backend on several nodes, simulated on one machine.

Two worker nodes are added to the session's cluster (its head is the third node)
with a custom resource that only they have, so the loader's actors land on them and
not on the head; each test removes what it added.
"""

from __future__ import annotations

import gc
import time
import warnings

import pytest

import stoker
from tests import sources_ray

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(120)

NODE_RESOURCE = "stoker_test_node"
# Ray marks a node that vanished dead after missed heartbeats (about 15 s here).
_NODE_DEAD_S = 60.0


def add_two_nodes(cluster):
    """Two worker nodes with 2 CPUs and 2 units of ``NODE_RESOURCE`` each: room for
    a replacement worker on the node that survives."""
    from tests.ray_cluster import wait_no_actors

    nodes = [
        cluster.add_node(num_cpus=2, resources={NODE_RESOURCE: 2}) for _ in range(2)
    ]
    cluster.wait_for_nodes()
    try:
        yield cluster, nodes
    finally:
        for node in nodes:
            if node in cluster.worker_nodes:
                cluster.remove_node(node)
        assert not wait_no_actors(), "Ray actors left running after the test"
        # A node removed without notice looks alive to Ray until its heartbeats are
        # missed; later tests must not get actors placed on it meanwhile.
        gone = {node.node_id for node in nodes}
        deadline = time.monotonic() + _NODE_DEAD_S
        while time.monotonic() < deadline and any(
            n["Alive"] for n in ray.nodes() if n["NodeID"] in gone
        ):
            time.sleep(0.2)
        # A removed node's log files are closed by nobody in Ray: collect them here,
        # not in a later test's leak check.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(scope="module")
def two_nodes(ray_cluster):
    """Shared by the tests below in file order; the last one removes a node."""
    yield from add_two_nodes(ray_cluster)


def on_workers(**options) -> stoker.RayOptions:
    return stoker.RayOptions(resources={NODE_RESOURCE: 1}, **options)


def test_batches_come_from_both_worker_nodes_in_order(two_nodes):
    _, nodes = two_nodes
    with stoker.Loader(
        sources_ray.WhereAmI(n=16, sleep=0.02), workers=2, ray=on_workers(), timeout=60
    ) as loader:
        batches = list(loader)
        summary = loader.stats.summary()
    assert [int(x[0]) for x, _, _ in batches] == list(range(16))
    assert {node for _, node, _ in batches} == {n.node_id for n in nodes}
    assert summary["backend"]["ray_nodes"] == 2


def test_a_lost_node_raises_worker_crashed_naming_it(two_nodes):
    cluster, nodes = two_nodes
    src = sources_ray.WhereAmI(n=40, sleep=0.1)
    with stoker.Loader(src, workers=2, ray=on_workers(), timeout=60) as loader:
        got: list[int] = []
        t0 = time.monotonic()
        with pytest.raises(stoker.WorkerCrashed) as info:
            victim = None
            it = iter(loader)
            x, first, _ = next(it)
            got.append(int(x[0]))
            victim = next(n for n in nodes if n.node_id == first)
            cluster.remove_node(victim, allow_graceful=False)
            t0 = time.monotonic()
            for x, _, _ in it:
                got.append(int(x[0]))
        assert time.monotonic() - t0 < 15, "the lost node was noticed too late"
    message = str(info.value)
    assert victim is not None and f"node {victim.node_id[:12]}" in message
    assert "died before returning batch" in message and "of epoch 0" in message
    assert got == list(range(len(got))) and len(got) < 40
