"""The read API: listing, filters, compare, export, downsampling, killed detection."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import pytest

import stoker.track.api as T
from stoker import BatchEvent, StoreError
from stoker.track import _liveness
from stoker.track._store import Changes, Store


@pytest.fixture
def store(any_store):
    return any_store


def quick(name, store, **kw):
    return T.track(name, store=store, capture=False, sample=False, **kw)


@pytest.fixture
def three_runs(store):
    ids = []
    for i, (name, lr) in enumerate(
        [("mnist-a", 0.1), ("mnist-b", 0.2), ("cifar", 0.1)]
    ):
        with quick(name, store, params={"lr": lr, "layers": 2}, tags={"i": i}) as run:
            run.log(step=0, loss=1.0)
            run.log(step=1, loss=0.5 - i / 10)
        ids.append(run.id)
    return ids


def test_list_is_newest_first_with_last_metrics(store, three_runs):
    rows = T.list_runs(store)
    assert [r["id"] for r in rows] == three_runs[::-1]
    assert rows[0]["metrics"] == {"loss": pytest.approx(0.3)}
    assert rows[0]["params"] == {"lr": 0.1, "layers": 2}
    assert all(r["status"] == "finished" and r["duration_s"] >= 0 for r in rows)


def test_list_filters(store, three_runs):
    def names(**kw):
        return [r["name"] for r in T.list_runs(store, **kw)]

    assert names(name="mnist-*") == ["mnist-b", "mnist-a"]
    assert names(name="IFA") == ["cifar"]
    assert names(params={"lr": 0.1}) == ["cifar", "mnist-a"]
    assert names(params={"lr": "0.1"}) == ["cifar", "mnist-a"]
    assert names(tags={"i": "1"}) == ["mnist-b"]
    assert names(status=["failed"]) == []
    assert names(limit=1) == ["cifar"]
    assert names(name="mnist-*", limit=1) == ["mnist-b"]
    assert names(since=time.time() + 60) == []


def test_compare_shows_param_differences_and_last_metrics(store, three_runs):
    a, b, _ = three_runs
    result = T.compare_runs([a, b], store)
    assert result["params"] == {"layers": [2, 2], "lr": [0.1, 0.2]}
    assert result["differing_params"] == ["lr"]
    assert result["metrics"]["loss"] == [pytest.approx(0.5), pytest.approx(0.4)]
    with pytest.raises(StoreError, match="no run 999"):
        T.compare_runs([a, 999], store)


def test_export_csv_and_json(store):
    with quick("exp", store, params={"p": 1}) as run:
        run.log(step=0, loss=float("nan"))
        run.log(step=1, loss=float("inf"))
        run.on_batch(BatchEvent("l1", 0, 0, 0, 0.1, 0.2, 1, 8))
    out = io.StringIO()
    T.export_run(run.id, out, "csv", store=store)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["key"], r["step"], r["value"]) for r in rows] == [
        ("loss", "0", "nan"),
        ("loss", "1", "inf"),
    ]
    out = io.StringIO()
    T.export_run(run.id, out, "csv", batches=True, store=store)
    (batch,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert batch["loader_key"] == "l1" and float(batch["wait_s"]) == 0.1
    out = io.StringIO()
    T.export_run(run.id, out, "json", store=store)
    doc = json.loads(out.getvalue())  # strict JSON: NaN and inf became strings
    assert [p["value"] for p in doc["points"]] == ["NaN", "Infinity"]
    assert doc["params"] == {"p": 1} and len(doc["loader_batches"]) == 1
    with pytest.raises(ValueError, match="fmt="):
        T.export_run(run.id, out, "xml", store=store)


def test_buckets_keep_a_one_step_spike(store):
    with quick("spiky", store) as run:
        for step in range(10_000):
            run.log(step=step, loss=100.0 if step == 4321 else 1.0)
    buckets = T.metric_buckets(run.id, "loss", 100, store=store)
    assert len(buckets) == 100
    assert max(b["max"] for b in buckets) == 100.0
    assert sum(b["count"] for b in buckets) == 10_000
    spike = [b for b in buckets if b["max"] == 100.0]
    assert len(spike) == 1 and spike[0]["step_min"] <= 4321 <= spike[0]["step_max"]


def test_delete_removes_everything_the_run_owned(store, three_runs):
    T.delete_run(three_runs[0], store)
    assert [r["id"] for r in T.list_runs(store)] == three_runs[:0:-1]
    with Store.open(store) as st:
        db = st._db
        orphans = db.scalar(
            "SELECT count(*) FROM points p LEFT JOIN series s ON s.id = p.series_id "
            "WHERE s.id IS NULL"
        )
        series = db.scalar(
            "SELECT count(*) FROM series WHERE run_id = ?", (three_runs[0],)
        )
    assert orphans == 0 and series == 0
    with pytest.raises(StoreError, match="no run"):
        T.delete_run(three_runs[0], store)


def _fake_running_run(store, **columns):
    now = time.time()
    base = {
        "name": "ghost",
        "created_at": now - 100,
        "heartbeat_at": now - 50,
        "host": _liveness.host(),
        "pid": 999_999_999,
        "pid_started_at": None,
    }
    with Store.open(store, create=True) as st:
        return st.create_run(**{**base, **columns})


def test_a_run_whose_process_is_gone_is_marked_killed(store):
    run_id = _fake_running_run(store)
    got = T.get_run(run_id, store)
    assert got["status"] == "killed"
    assert got["ended_at"] == pytest.approx(time.time() - 50, abs=5)
    # ... and that is now in the store, not just in the answer.
    with Store.open(store) as st:
        assert st.runs(ids=[run_id])[0]["status"] == "killed"


def test_a_live_process_keeps_its_run_running_even_with_a_stale_heartbeat(store):
    import os

    pid = os.getpid()
    started = _liveness.process_started_at(pid)
    assert started is not None
    run_id = _fake_running_run(store, pid=pid, pid_started_at=started)
    assert T.get_run(run_id, store)["status"] == "running"
    # The same pid with another start time is a reused pid: the run's process died.
    other = _fake_running_run(store, pid=pid, pid_started_at=started - 1000)
    assert T.get_run(other, store)["status"] == "killed"


def test_remote_runs_are_killed_only_after_a_long_silence(store):
    now = time.time()
    fresh = _fake_running_run(store, host="elsewhere", heartbeat_at=now - 5)
    stale = _fake_running_run(
        store, host="elsewhere", heartbeat_at=now - _liveness.REMOTE_STALE_S - 1
    )
    statuses = {r["id"]: r["status"] for r in T.list_runs(store)}
    assert statuses == {fresh: "running", stale: "killed"}


def test_a_heartbeat_revives_a_run_wrongly_marked_killed(store):
    run_id = _fake_running_run(store)
    assert T.get_run(run_id, store)["status"] == "killed"
    with Store.open(store) as st:
        assert st.write(run_id, Changes(heartbeat=time.time()))
    # The fake pid is still dead, so a reader would mark it again: look directly.
    with Store.open(store) as st:
        row = st.runs(ids=[run_id])[0]
    assert row["status"] == "running" and row["ended_at"] is None


def test_jsonable_makes_strict_json():
    obj = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], 3: b"diff"}
    assert T.jsonable(obj) == {
        "a": "NaN",
        "b": ["Infinity", "-Infinity", 1.5],
        "3": "diff",
    }


def test_a_killed_child_not_yet_reaped_is_dead():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = _liveness.process_started_at(proc.pid)
        assert _liveness.process_alive(proc.pid, started)
        proc.kill()
        deadline = time.monotonic() + 10
        while _liveness.process_alive(proc.pid, started):  # a zombie until reaped
            assert time.monotonic() < deadline, "a zombie was taken for alive"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_file_system_without_wal_is_refused(tmp_path):
    from stoker.track._sqlite import use_wal

    class NoWal:
        def execute(self, sql):
            class Row:
                def fetchone(self):
                    return ("delete",)

            return Row()

    with pytest.raises(StoreError, match="WAL"):
        use_wal(NoWal(), tmp_path / "store.db")  # type: ignore[arg-type]


def test_a_status_filter_sees_runs_found_dead_while_listing(store):
    run_id = _fake_running_run(store)
    assert [r["id"] for r in T.list_runs(store, status=["killed"])] == [run_id]
    assert T.list_runs(store, status=["running"]) == []
