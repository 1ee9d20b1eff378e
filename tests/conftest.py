"""Shared fixtures: the backend parameter and leak guards."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.harness import BACKENDS

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(scope="session")
def ray_cluster():
    """issue 17: a real Ray cluster for the session (tests/ray_cluster.py)."""
    from tests.ray_cluster import start_cluster

    yield from start_cluster()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict:
    """Loader keyword arguments selecting one backend (see tests/harness.py)."""
    if request.param.get("backend") == "ray":  # issue 17
        from tests.ray_cluster import wait_no_actors

        request.getfixturevalue("ray_cluster")
        yield request.param
        assert not wait_no_actors(), "Ray actors left running after the test"
        return
    yield request.param


def stoker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("loader-")]


@pytest.fixture(autouse=True)
def no_worker_threads_left():
    """Every test must leave no stoker worker thread running once loaders close."""
    yield
    deadline = time.monotonic() + 5
    while stoker_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    left = stoker_threads()
    assert not left, f"stoker threads left running: {[t.name for t in left]}"
