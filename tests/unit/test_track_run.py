"""stoker.track runs: logging, bad input, statuses, decorator, loader observation."""

from __future__ import annotations

import importlib
import math
import os
import threading
import time
import warnings
from typing import Any

import numpy as np
import pytest

import stoker
import stoker.track.api as T
from stoker import BatchEvent, StoreError
from stoker.track import _registry as run_module
from stoker.track._store import Store


@pytest.fixture
def store(any_store):
    return any_store


def _heartbeat(store, run_id):
    with Store.open(store) as st:
        return st.runs(ids=[run_id])[0]["heartbeat_at"]


@pytest.fixture(autouse=True)
def no_writer_threads_left():
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("stoker-track")]
    assert not left, f"tracker threads left running: {left}"


def quick(name="t", store=None, **kw):
    return T.track(name, store=store, capture=False, sample=False, **kw)


def test_the_module_is_callable_and_still_a_package(store):
    assert T.Store is Store
    # The package is a callable module: beyond what type checkers model.
    callable_module: Any = importlib.import_module("stoker.track")
    with callable_module(
        "callable", params={"a": 1}, store=store, capture=False
    ) as run:
        assert T.active_run() is run
    assert run.status == "finished"
    assert T.active_run() is None


def test_params_tags_and_metrics_round_trip(store):
    with quick("mnist", store, params={"lr": 0.1, "layers": [64, 32]}) as run:
        run.log_params(batch_size=128, optimizer={"name": "adam"})
        run.log_params({"lr": 0.2})  # overwrites
        run.set_tags(stage="dev", seed=3)
        for step in range(5):
            run.log(step=step, loss=1.0 / (step + 1), acc=step / 10)
    got = T.get_run(run.id, store)
    assert got["name"] == "mnist" and got["status"] == "finished"
    assert got["params"] == {
        "lr": 0.2,
        "layers": [64, 32],
        "batch_size": 128,
        "optimizer": {"name": "adam"},
    }
    assert got["tags"] == {"stage": "dev", "seed": "3"}
    loss = got["metrics"]["loss"]
    assert (loss["last"], loss["step"], loss["count"]) == (0.2, 4, 5)
    assert (loss["min"], loss["max"]) == (0.2, 1.0)


def test_every_point_is_kept_even_repeated_steps(store):
    with quick(store=store) as run:
        run.log(step=3, x=1.0)
        run.log(step=3, x=2.0)
        run.log(step=1, x=5.0)
    with Store.open(store) as st:
        points = st.points(run.id)
    assert [(p["step"], p["value"]) for p in points] == [(1, 5.0), (3, 1.0), (3, 2.0)]
    # "last" is the highest step, and at equal steps the latest logged.
    assert T.get_run(run.id, store)["metrics"]["x"]["last"] == 2.0


def test_auto_step_continues_from_the_previous_call(store):
    with quick(store=store) as run:
        run.log(a=1)
        run.log(a=2)
        run.log(step=10, a=3)
        run.log(a=4)
    with Store.open(store) as st:
        steps = [p["step"] for p in st.points(run.id)]
    assert steps == [0, 1, 10, 11]


def test_numeric_types_nan_and_inf(store):
    with quick(store=store) as run:
        run.log(
            step=0,
            np32=np.float32(0.5),
            np_int=np.int64(7),
            zero_d=np.array(2.5),
            flag=True,
            huge=10**400,
            nan=float("nan"),
            inf=float("inf"),
            ninf=-math.inf,
        )
    m = T.get_run(run.id, store)["metrics"]
    assert m["np32"]["last"] == 0.5 and m["np_int"]["last"] == 7.0
    assert m["zero_d"]["last"] == 2.5 and m["flag"]["last"] == 1.0
    assert m["huge"]["last"] == math.inf
    assert math.isnan(m["nan"]["last"]) and m["nan"]["nan_count"] == 1
    assert m["inf"]["last"] == math.inf and m["ninf"]["last"] == -math.inf


@pytest.mark.parametrize(
    "value", ["0.5", None, [1.0, 2.0], np.ones(3), {"a": 1}, object()]
)
def test_non_numeric_metric_values_raise_on_the_callers_thread(store, value):
    with quick(store=store) as run:
        with pytest.raises(TypeError, match="metric 'loss'"):
            run.log(step=0, loss=value)
        run.log(step=1, loss=0.25)  # the run carries on
    assert T.get_run(run.id, store)["metrics"]["loss"]["count"] == 1


def test_names_with_any_characters(store):
    names = [
        "val/loss",
        "with space",
        'quote\'s "double"',
        "'; DROP TABLE runs; --",
        "ünïcödé ✓ 🚀",
        "new\nline",
        "x" * 250,
    ]
    with quick(store=store, params={n: i for i, n in enumerate(names)}) as run:
        run.log({n: float(i) for i, n in enumerate(names)}, step=0)
        run.set_tags({n: n for n in names})
    got = T.get_run(run.id, store)
    assert set(got["metrics"]) == set(names)
    assert got["params"] == {n: i for i, n in enumerate(names)}
    assert got["tags"] == {n: n for n in names}
    assert len(T.list_runs(store)) == 1  # the table is still there


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", ValueError),
        ("x" * 251, ValueError),
        ("nul\x00byte", ValueError),
        ("lone \ud800 surrogate", ValueError),
        (3, TypeError),
    ],
)
def test_unusable_names_raise(store, name, error):
    with quick(store=store) as run:
        with pytest.raises(error):
            run.log({name: 1.0}, step=0)
        with pytest.raises(error):
            run.log_params({name: 1})
        with pytest.raises(error):
            run.set_tags({name: "x"})
    with pytest.raises(error):
        quick(name, store)


def test_huge_values_raise_and_moderate_ones_are_kept(store):
    big = "y" * 60_000
    with quick(store=store, params={"ok": big}) as run:
        with pytest.raises(ValueError, match="limit is 65,536"):
            run.log_params(text="z" * 70_000)
        with pytest.raises(ValueError, match="limit is 65,536"):
            run.set_tags(text="z" * 70_000)
        with pytest.raises(ValueError, match="limit is 65,536"):
            run.log_params(arr=np.zeros(20_000))
    assert T.get_run(run.id, store)["params"] == {"ok": big}


def test_non_json_params_are_stored_as_numbers_lists_or_text(store, tmp_path):
    with quick(store=store) as run:
        run.log_params(
            path=tmp_path, np_float=np.float64(0.5), arr=np.arange(3), s={2, 1}
        )
    params = T.get_run(run.id, store)["params"]
    assert params == {
        "path": str(tmp_path),
        "np_float": 0.5,
        "arr": [0, 1, 2],
        "s": [1, 2],
    }


@pytest.mark.parametrize("step", [1.5, "3", None])
def test_bad_steps_raise(store, step):
    with quick(store=store) as run:
        if step is None:
            run.log(step=np.int64(4), x=1)  # numpy ints are whole numbers
            return
        with pytest.raises(TypeError, match="whole number"):
            run.log(step=step, x=1)
        with pytest.raises(ValueError, match="64-bit"):
            run.log(step=2**64, x=1)


def test_failed_run_keeps_the_exception(store):
    with pytest.raises(ZeroDivisionError), quick("boom", store) as run:
        run.log(step=0, loss=1.0)
        1 / 0  # noqa: B018
    got = T.get_run(run.id, store)
    assert got["status"] == "failed"
    assert "ZeroDivisionError" in got["error"] and "1 / 0" in got["error"]
    assert got["metrics"]["loss"]["count"] == 1


def test_ctrl_c_marks_the_run_killed(store):
    with pytest.raises(KeyboardInterrupt), quick("ctrl-c", store) as run:
        raise KeyboardInterrupt
    assert T.get_run(run.id, store)["status"] == "killed"


def test_system_exit_zero_is_finished(store):
    with pytest.raises(SystemExit), quick(store=store) as run:
        raise SystemExit(0)
    assert T.get_run(run.id, store)["status"] == "finished"


def test_logging_outside_the_run_raises(store):
    run = quick(store=store)
    with pytest.raises(RuntimeError, match="not running"):
        run.log(step=0, x=1)
    with run:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        run.log(step=0, x=1)
    with pytest.raises(RuntimeError, match="already started"):
        run.start()
    run.end()  # idempotent


def test_decorator_makes_a_run_per_call(store):
    @T.track("decorated", store=store, capture=False, sample=False)
    def train(lr):
        T.active_run().log(step=0, lr=lr)
        return lr * 2

    assert train(0.1) == 0.2
    assert train(0.3) == 0.6
    runs = T.list_runs(store)
    assert [r["name"] for r in runs] == ["decorated", "decorated"]
    assert [r["metrics"]["lr"] for r in runs] == [0.3, 0.1]


def test_bare_decorator_names_the_run_after_the_function(store, monkeypatch):
    monkeypatch.setenv("STOKER_STORE", str(store))

    @T.track
    def my_experiment():
        return T.active_run().name

    assert my_experiment() == "my_experiment"


def test_nested_runs_and_active_run(store):
    with quick("outer", store) as outer:
        assert T.active_run() is outer
        with quick("inner", store) as inner:
            assert T.active_run() is inner
        assert T.active_run() is outer
        seen = []
        thread = threading.Thread(target=lambda: seen.append(T.active_run()))
        thread.start()
        thread.join(10)
        assert seen == [outer]  # a new thread sees the process's innermost run
    assert T.active_run() is None


def test_flush_makes_points_visible_while_running(store):
    with quick(store=store) as run:
        run.log(step=0, x=1.0)
        run.flush()
        assert T.get_run(run.id, store)["metrics"]["x"]["count"] == 1
        assert T.get_run(run.id, store)["status"] == "running"


def test_a_run_deleted_while_running_drops_its_data_quietly(store):
    with quick(store=store) as run:
        run.log(step=0, x=1.0)
        run.flush()
        with pytest.raises(StoreError, match="still running"):
            T.delete_run(run.id, store)
        T.delete_run(run.id, store, force=True)
        run.log(step=1, x=2.0)
    assert T.list_runs(store) == []


def test_fake_loader_events_are_recorded(store):
    settings = {"workers": 4, "mode": "thread", "max_queue_size": 10, "seed": 7}
    with quick(store=store) as run:
        run.on_start("loader-9", settings)
        for pos in range(6):
            run.on_batch(BatchEvent("loader-9", 0, pos, pos, 0.01, 0.02, 3, 100))
        run.on_epoch_end("loader-9", 0, {"batches": 6, "verdict": "input-bound"})
        run.on_close("loader-9", {"batches": 6, "verdict": "fed"})
    (loader,) = T.get_run(run.id, store)["loaders"]
    assert loader["loader_key"] == "loader-9"
    recorded = dict(loader["settings"])
    assert len(recorded.pop("data_fingerprint")) == 16  # added by the writer
    assert recorded == settings
    assert loader["summary"] == {"batches": 6, "verdict": "fed"}
    assert loader["batches_recorded"] == 6 and loader["epochs_recorded"] == 1
    assert loader["mean_wait_s"] == pytest.approx(0.01)
    assert loader["closed_at"] is not None


def test_a_real_loader_reports_itself(store):
    data = [np.full((4, 3), i, dtype=np.float32) for i in range(12)]
    with quick("loader", store) as run:
        loader = stoker.Loader(data, workers=2, seed=5)
        for _epoch in range(2):
            for _batch in loader:
                pass
        loader.close()
    outside = stoker.Loader(data, workers=2)  # made after the run: not recorded
    list(outside)
    outside.close()
    (loader_row,) = T.get_run(run.id, store)["loaders"]
    assert loader_row["settings"]["workers"] == 2
    assert loader_row["settings"]["seed"] == 5
    assert loader_row["settings"]["mode"] == "thread"
    assert loader_row["batches_recorded"] == 24
    assert loader_row["epochs_recorded"] == 2
    summary = loader_row["summary"]
    assert summary["batches"] == 24
    for key in ("throughput_bps", "wait_fraction", "time_to_first_batch_s", "verdict"):
        assert key in summary


@pytest.mark.timeout(60)
def test_a_process_loader_reports_its_start_method_and_children(store):
    from tests.sources import Indexed

    with T.track("procs", store=store, capture=False) as run:
        # Batches slow enough that the loop waits: the second process starts only
        # then (a loop that never waits runs on fewer, docs/design.md).
        src = Indexed(n=6, sleep=0.02)
        with stoker.Loader(src, workers=2, use_multiprocessing=True) as ld:
            for _epoch in range(2):
                list(ld)
            time.sleep(1.1)  # let a sample see the worker processes
    got = T.get_run(run.id, store)
    (loader_row,) = got["loaders"]
    assert loader_row["settings"]["use_multiprocessing"] is True
    assert loader_row["settings"]["start_method"] in ("fork", "forkserver", "spawn")
    assert loader_row["batches_recorded"] == 12
    assert got["system"]["children"]["max"] >= 2


def test_a_loader_used_after_its_run_ended_is_not_recorded(store):
    data = [np.zeros(2)] * 5
    with quick(store=store) as run:
        loader = stoker.Loader(data, workers=1)
        list(loader)
    list(loader)  # the run has ended: these batches go nowhere
    loader.close()
    assert T.get_run(run.id, store)["loaders"][0]["batches_recorded"] == 5
    assert len(run._queue) == 0


def test_capture_records_command_and_environment(store):
    with T.track("captured", store=store, sample=False) as run:
        pass
    got = T.get_run(run.id, store)
    assert got["command"] and got["executable"] and got["cwd"]
    env = got["environment"]
    assert env["python"] and env["cpu_count"] >= 1 and env["memory_bytes"] > 0
    assert "numpy" in env["packages"]


def test_sampling_records_process_cpu_and_memory(store):
    with T.track("sampled", store=store, capture=False) as run:
        pass
    system = T.get_run(run.id, store)["system"]
    assert system["rss_mb"]["last"] > 1
    assert {"cpu_percent", "threads", "children", "host_cpu_percent"} <= set(system)


def test_a_failing_store_is_retried_and_warned_about_once(store, monkeypatch, caplog):
    real_write = Store.write
    failures = {"left": 4}

    def flaky(self, run_id, ch):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StoreError("simulated: database is locked")
        return real_write(self, run_id, ch)

    with quick(store=store) as run:
        monkeypatch.setattr(Store, "write", flaky)
        for step in range(100):
            run.log(step=step, x=float(step))
        run.flush(timeout=10)  # retried until it went through
    assert failures["left"] == 0
    assert T.get_run(run.id, store)["metrics"]["x"]["count"] == 100
    warnings = [r for r in caplog.records if "not written yet" in r.getMessage()]
    assert len(warnings) == 1


def test_a_store_that_never_recovers_makes_end_raise(store, monkeypatch):
    run = quick(store=store).start()
    run.log(step=0, x=1.0)

    def broken(self, run_id, ch):
        raise StoreError("simulated: disk full")

    monkeypatch.setattr(Store, "write", broken)
    with pytest.raises(StoreError, match="could not be completed.*disk full"):
        run.end()


def test_a_run_deleted_while_running_warns_once(store, caplog):
    with quick(store=store) as run:
        run.flush()
        T.delete_run(run.id, store, force=True)
        for step in range(3):
            run.log(step=step, x=1.0)
            run.flush()
    deleted = [r for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(deleted) == 1


def test_the_heartbeat_advances_while_the_run_lives(store):
    with quick(store=store) as run:
        first = _heartbeat(store, run.id)
        time.sleep(1.3)
        run.flush()
        later = _heartbeat(store, run.id)
    assert later - first >= 1.0


@pytest.mark.timeout(30)
def test_a_forked_child_neither_logs_to_nor_ends_the_parents_run(store):
    with quick(store=store) as run:
        run.log(step=0, x=1.0)
        with warnings.catch_warnings():  # Python 3.12+ warns about fork and threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                forgotten = T.active_run() is None and not run_module._open_runs
                run.log(step=1, x=2.0)  # dropped, not raised
                run_module._end_open_runs()  # what the child's atexit would do
                code = 0 if forgotten else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        run.flush()
        assert T.get_run(run.id, store)["status"] == "running"
    got = T.get_run(run.id, store)
    assert got["status"] == "finished" and got["metrics"]["x"]["count"] == 1
