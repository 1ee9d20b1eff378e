"""Shared fixtures: the backend parameter and leak guards."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.harness import BACKENDS

os.environ.setdefault("KERAS_BACKEND", "torch")
# Two CPU devices for the JAX sharding tests; XLA reads this when jax is first imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
# Once imported, JAX warns at every os.fork() in the process (an error here), and the
# suite forks process workers: the JAX adapter's tests run only in a pytest process of
# their own, make test's second one (KERAS_BACKEND=jax).
if os.environ["KERAS_BACKEND"] != "jax":
    collect_ignore_glob = ["integration/test_jax_adapter.py"]


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


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the session (tests/pg.py), stopped at the end."""
    from tests import pg

    why = pg.available()
    if why:
        pytest.skip(why)
    server = pg.PgServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a new, empty database on the session's PostgreSQL server."""
    if not pg_server.running:  # a fault test stopped it and failed before restarting
        pg_server.start()
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    """A new store of each kind: an SQLite path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "store.db"
    return request.getfixturevalue("pg_url")
