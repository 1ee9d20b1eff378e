"""issue 17: the Ray backend beyond the conformance suite, on the session's Ray.

Options and the missing-Ray error, failures (a source that raises, an actor that
dies, with and without retry, an actor that cannot be placed, what cannot be
pickled), determinism against threads and processes, and leaks.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

import stoker
from tests import sources, sources_ray
from tests.harness import as_bytes, epochs_bytes, ids_of

pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def ray_on(ray_cluster):
    """The session's Ray; after the test, no actor may be left."""
    from tests.ray_cluster import wait_no_actors

    yield ray_cluster
    assert not wait_no_actors(), "Ray actors left running after the test"


def ray_loader(source, **options) -> stoker.Loader:
    options.setdefault("timeout", 30)
    options.setdefault("backend", "ray")
    return stoker.Loader(source, **options)


# -- options (no cluster needed) ------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"address": ""}, "address"),
        ({"num_cpus": -1}, "num_cpus"),
        ({"num_cpus": float("inf")}, "num_cpus"),
        ({"resources": {"disk": 0}}, "resources"),
        ({"resources": {"CPU": 1}}, "num_cpus="),
        ({"placement": "everywhere"}, "spread, pack"),
        ({"retry": "yes"}, "retry"),
        ({"start_timeout_s": 0}, "start_timeout_s"),
        ({"runtime_env": "env"}, "runtime_env"),
    ],
)
def test_bad_ray_options_say_the_fix(kwargs, match):
    with pytest.raises(stoker.ConfigError, match=match):
        stoker.RayOptions(**kwargs)


def test_bad_backend_combinations_say_the_fix():
    src = sources.Indexed(n=4)
    with pytest.raises(stoker.ConfigError, match="expected None .* or 'ray'"):
        stoker.Loader(src, backend="dask")
    with pytest.raises(stoker.ConfigError, match=r"stoker.RayOptions\(...\)"):
        stoker.Loader(src, ray={"address": "auto"})  # type: ignore[arg-type]
    with pytest.raises(stoker.ConfigError, match="drop use_multiprocessing"):
        stoker.Loader(src, backend="ray", use_multiprocessing=True)
    with pytest.raises(stoker.ConfigError, match="leave them unset"):
        stoker.Loader(src, backend="ray", start_method="spawn")


def test_missing_ray_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(stoker.ConfigError, match=r"pip install 'stoker\[ray\]'"):
        stoker.Loader(sources.Indexed(n=4), backend="ray")
    with pytest.raises(stoker.ConfigError, match=r"pip install 'stoker\[ray\]'"):
        stoker.Loader(sources.Indexed(n=4), ray=stoker.RayOptions())


def test_ray_options_imply_the_backend_and_show_in_settings():
    loader = stoker.Loader(sources.Indexed(n=4), ray=stoker.RayOptions(retry=True))
    try:
        assert loader.options.mode == "ray"
        settings = loader.options.to_dict()
        assert settings["backend"] == "ray" and settings["ray"]["retry"] is True
    finally:
        loader.close()  # never iterated: no actor was started
    plain = stoker.Loader(sources.Indexed(n=4)).options.to_dict()
    assert "ray" not in plain and "backend" not in plain


# -- semantics ------------------------------------------------------------------------
def test_same_bytes_as_threads_and_processes_with_global_reseed(ray_on):
    # LegacyRandom draws from the global generators: with a seed, processes and Ray
    # reseed them per batch (seeding rule 4), so both give the same bytes.
    with ray_loader(sources.LegacyRandom(), workers=3, seed=11) as r:
        on_ray = epochs_bytes(r, 2)
    with stoker.Loader(
        sources.LegacyRandom(), workers=2, seed=11, use_multiprocessing=True
    ) as p:
        assert epochs_bytes(p, 2) == on_ray
    with ray_loader(sources.Jittery(n=9), workers=2, seed=4, shuffle=True) as r:
        jittery = epochs_bytes(r, 2)
    with stoker.Loader(sources.Jittery(n=9), workers=2, seed=4, shuffle=True) as t:
        assert epochs_bytes(t, 2) == jittery


def test_resume_and_shards_match_threads(ray_on):
    opts: dict[str, Any] = {"workers": 2, "seed": 9, "shuffle": True}
    with ray_loader(sources.Indexed(n=12), **opts) as first:
        it = iter(first)
        head = [as_bytes(next(it)) for _ in range(5)]
        state = first.state_dict()
    with ray_loader(sources.Indexed(n=12), **opts) as second:
        second.load_state_dict(state)
        tail = [as_bytes(b) for b in second]
    with stoker.Loader(sources.Indexed(n=12), **opts) as threads:
        assert head + tail == [as_bytes(b) for b in threads]
    seen = []
    for k in range(3):
        with ray_loader(sources.Indexed(n=12), **opts, shard=(k, 3)) as part:
            seen += ids_of(list(part))
    assert sorted(seen) == list(range(12))


def test_cheap_batches_go_several_to_a_call_with_the_same_bytes(ray_on):
    """issue 17, per-batch overhead: runs of cheap batches per actor call."""
    opts: dict[str, Any] = {"workers": 2, "seed": 5, "shuffle": True}
    with ray_loader(sources.Indexed(n=300), **opts) as r:
        on_ray = epochs_bytes(r, 2)
        calls = r.stats.summary()["backend"]["ray_calls"]
    with stoker.Loader(sources.Indexed(n=300), **opts) as t:
        assert epochs_bytes(t, 2) == on_ray
    # One call per batch without runs; how long the runs get depends on the
    # machine's load: 249, 309 and 486 calls in three runs alone, 461 in a full
    # run, 439-558 on the commit before (so any run at all is the test).
    assert calls < 600, f"{calls} calls for 600 cheap batches"
    # Batches that take longer than a call costs go one per call.
    with ray_loader(sources.Slow(sleep=0.005, n=12), workers=2) as slow:
        assert len(list(slow)) == 12
        assert slow.stats.summary()["backend"]["ray_calls"] == 12
    # A batch that cannot be sent, in the middle of a run, is still named.
    with ray_loader(sources_ray.LockAt(bad=150, n=200), workers=2) as loader:
        got = []
        with pytest.raises(stoker.SerializationError, match="batch 150 of epoch 0"):
            for x in loader:
                got.append(int(x[0]))
        assert got == list(range(150))


def test_batches_are_zero_copy_views_and_stats_name_the_nodes(ray_on):
    with ray_loader(sources_ray.Big(n=4, mb=2), workers=2) as loader:
        got = list(loader)
        assert [int(b[0]) for b in got] == [0, 1, 2, 3]
        # Mapped from the object store, not copied: Ray hands out read-only arrays.
        assert not got[0].flags.writeable and not got[0].flags.owndata
        summary = loader.stats.summary()
    assert summary["mode"] == "ray"
    assert summary["backend"]["ray_workers"] == 2
    assert summary["backend"]["ray_nodes"] == 1


def test_break_skips_the_batches_queued_for_the_stopped_epoch(ray_on, tmp_path):
    log = tmp_path / "calls"
    src = sources_ray.Logged(str(log), n=40, sleep=0.05)
    with ray_loader(src, workers=2, max_queue_size=10) as loader:
        for k, _ in enumerate(loader):
            if k == 1:
                break  # 12 tasks were sent (max_queue_size + workers)
        assert [int(b[0]) for b in loader] == list(range(40))
    calls = len(log.read_text().split())
    # The 2 delivered, at most two more per actor that had started, then epoch 2.
    assert calls <= 2 + 2 * 2 + 40, f"{calls} calls: queued batches were computed"


# -- failures -------------------------------------------------------------------------
def test_source_exception_names_batch_and_node(ray_on):
    with ray_loader(sources.FailsAt(bad=(4,), n=8), workers=2) as loader:
        with pytest.raises(KeyError, match="missing record 4") as info:
            list(loader)
    notes = "\n".join(info.value.__notes__)
    assert "source[4]" in notes and "batch 4 of epoch 0" in notes
    assert "ray worker" in notes and "node " in notes and "node unknown" not in notes


def test_actor_that_dies_raises_worker_crashed_then_next_epoch_recovers(ray_on):
    with ray_loader(sources_ray.DiesAt(bad=3, n=8), workers=2) as loader:
        t0 = time.monotonic()
        with pytest.raises(stoker.WorkerCrashed) as info:
            list(loader)
        assert time.monotonic() - t0 < 10
        message = str(info.value)
        # Every batch the dead actor had not returned is named (Ray does not say
        # which one was running): 3, and those queued or finished-but-lost with it.
        assert "3 (source index 3)" in message and "of epoch 0" in message
        assert "node " in message and "retry=True" in message
        assert info.value.index is not None and info.value.index <= 3
        # The source still dies at 3: the next epoch starts a new actor, runs until
        # it dies again, and says so again; batches before it arrive in order.
        got = []
        with pytest.raises(stoker.WorkerCrashed):
            for b in loader:
                got.append(int(b[0]))
        assert got == list(range(len(got))) and len(got) <= 3
        assert loader.stats.summary()["backend"]["ray_restarts"] >= 1


def test_retry_restarts_the_actor_and_computes_the_batch_again(ray_on, tmp_path):
    src = sources_ray.DiesAt(bad=3, n=8, marker=str(tmp_path / "died"))
    with ray_loader(src, workers=2, ray=stoker.RayOptions(retry=True)) as loader:
        assert ids_of([(b, None) for b in loader]) == list(range(8))
        backend = loader.stats.summary()["backend"]
    assert (tmp_path / "died").exists()
    assert backend["ray_retries"] >= 1 and backend["ray_restarts"] == 1


def test_worker_that_cannot_be_placed_says_which_resources(ray_on):
    opts = stoker.RayOptions(resources={"tpu_pod": 1}, start_timeout_s=1.0)
    with ray_loader(sources.Indexed(n=4), workers=1, ray=opts) as loader:
        t0 = time.monotonic()
        with pytest.raises(stoker.WorkerError, match="tpu_pod=1") as info:
            list(loader)
        assert time.monotonic() - t0 < 10
    assert "start_timeout_s=1 s" in str(info.value)


def test_unpicklable_source_and_batch(ray_on):
    with ray_loader(sources_ray.HoldsLock(), workers=1) as loader:
        with pytest.raises(stoker.SerializationError, match="source"):
            list(loader)
    with ray_loader(sources_ray.ReturnsLock(), workers=1) as loader:
        with pytest.raises(stoker.SerializationError, match="batch 0 of epoch 0"):
            list(loader)


# -- leaks ----------------------------------------------------------------------------
def test_no_actor_left_after_close_gc_or_an_error_in_the_training_step(ray_on):
    from tests.ray_cluster import wait_no_actors

    threads = threading.active_count()
    for k in range(6):
        loader = ray_loader(sources.Indexed(n=6), workers=2)
        if k % 3 == 0:
            with loader:
                list(loader)
        elif k % 3 == 1:
            next(iter(loader))
            del loader  # dropped without close(): the finalizer kills the actors
            gc.collect()
        else:
            with pytest.raises(ZeroDivisionError), loader:
                for _ in loader:
                    _ = 1 / 0  # the training step fails
        assert not wait_no_actors(), f"actors left after loader {k}"
    assert threading.active_count() <= threads + 1  # Ray may start one helper


def test_keyboard_interrupt_in_the_loop_kills_the_actors(ray_on):
    from tests.ray_cluster import live_actors, wait_no_actors

    with pytest.raises(KeyboardInterrupt):
        with ray_loader(sources.Indexed(n=50, sleep=0.01), workers=2) as loader:
            for k, _ in enumerate(loader):
                if k == 2:
                    assert live_actors()
                    raise KeyboardInterrupt
    assert not wait_no_actors()


def test_batches_stay_valid_after_close(ray_on):
    with ray_loader(sources.Indexed(n=3), workers=1) as loader:
        kept = list(loader)
    assert [int(x[0]) for x, _ in kept] == [0, 1, 2]
    assert np.isfinite(kept[2][1]).all()


def test_a_queued_task_goes_to_the_worker_given_one_longest_ago():
    """Ties in load go to the actor that got a task first (likely the first to
    finish): pool order sent every queued task to the first actors."""
    from types import SimpleNamespace

    from stoker._engine._ray_run import Worker
    from stoker._engine.ray import RayBackend

    pool = [Worker(i, None, None) for i in range(4)]
    loads = [(1, 3.0), (1, 1.0), (2, 0.5), (1, 2.0)]  # (tasks queued, sent at)
    for w, (load, sent_at) in zip(pool, loads, strict=True):
        w.load, w.sent_at = load, sent_at
    fake = SimpleNamespace(_pool=pool)
    assert RayBackend.least_loaded(fake) is pool[1]  # type: ignore[arg-type]
    pool[1].dead = True
    assert RayBackend.least_loaded(fake) is pool[3]  # type: ignore[arg-type]
