"""The dashboard's reads in ``stoker.track``: downsampling, pages, read-only."""

from __future__ import annotations

import json
import math
import sqlite3
import time

import pytest

import stoker.track.api as T
from stoker._errors import StoreError
from stoker.track import _liveness
from stoker.track._store import Changes, Store
from tests.ui_stores import add_run, big_series, demo_store


def test_min_max_last_buckets_keep_spikes_and_the_global_extremes(tmp_path):
    path = tmp_path / "s.db"
    run_id = big_series(path, 100_000)
    s = T.series(run_id, "loss", store=path)
    sent = len(s["step"]) + len(s["min"]) + len(s["max"]) + len(s["last"]) // 1
    assert 3 * len(s["step"]) <= T.MAX_POINTS and sent > 1000
    assert s["count"] == 100_000 and s["nan_count"] == 0
    assert (s["global_min"], s["global_max"]) == (-7.0, 50.0)
    assert min(s["min"]) == -7.0 and max(s["max"]) == 50.0  # the spikes survive
    assert s["step"] == sorted(s["step"]) and s["step"][-1] == 99_999
    assert s["last"][-1] == pytest.approx(1.0 + 0.001 * (99_999 % 100))
    small = T.series(run_id, "loss", max_points=30, store=path)
    assert len(small["step"]) == 10 and max(small["max"]) == 50.0


def test_a_short_series_is_sent_exactly_and_nan_is_counted(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as st:
        rid = add_run(st, "nan", metrics={"loss": [3.0, 2.0, float("nan"), 1.0]})
    s = T.series(rid, "loss", store=path)
    assert s["step"] == [0, 1, 2, 3] and s["last"] == [3.0, 2.0, None, 1.0]
    assert s["nan_count"] == 1 and s["global_min"] == 1.0
    assert T.series(rid, "nope", store=path)["count"] == 0
    with pytest.raises(ValueError, match="at least 3"):
        T.series(rid, "loss", max_points=2, store=path)


def test_loader_timeline_accounts_for_every_batch(tmp_path):
    path = tmp_path / "s.db"
    ids = demo_store(path)
    (ld,) = T.run_charts(ids["threads-1"], path)["loaders"]
    t = ld["timeline"]
    assert ld["batches"] == 300 and ld["summary"]["advice"] == "add workers"
    width = t["t"][1] - t["t"][0]
    assert sum(x * width for x in t["throughput_bps"]) == pytest.approx(300, rel=1e-3)
    assert all(0 <= f <= 1 for f in t["wait_fraction"])
    assert max(t["produce_max_s"]) == pytest.approx(0.008)
    assert max(t["wait_max_s"]) == pytest.approx(0.008)
    assert set(t["queue_depth"]) == {3}


def test_reads_are_read_only_and_never_wait_for_a_writer(tmp_path):
    path = tmp_path / "s.db"
    ids = demo_store(path)
    with Store.open(path, create=True) as st:
        dead = st.create_run(
            name="dead",
            created_at=1.0,
            heartbeat_at=2.0,
            host=_liveness.host(),
            pid=2**22 + 12345,
        )
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a training run holding the write lock
    try:
        started = time.monotonic()
        page = T.runs_page(T.RunQuery(), path)
        T.run_charts(ids["threads-1"], path)
        assert time.monotonic() - started < 2.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    (shown,) = [r for r in page["runs"] if r["id"] == dead]
    assert shown["status"] == "killed"  # shown killed...
    raw = sqlite3.connect(path).execute("SELECT status FROM runs WHERE id = ?", (dead,))
    assert raw.fetchone()[0] == "running"  # ...but the reader wrote nothing
    killed = T.runs_page(T.RunQuery(status=("killed",)), path)
    assert [r["id"] for r in killed["runs"]] == [dead] and killed["total"] == 1
    running = T.runs_page(T.RunQuery(status=("running",)), path)
    assert running["runs"] == [] and running["total"] == 0
    both = T.runs_page(T.RunQuery(status=("running", "killed", "finished")), path)
    assert both["total"] == len(ids) + 1
    with pytest.raises(StoreError, match="no stoker store"):
        T.open_readonly(tmp_path / "missing.db")


def test_edits_keep_the_heartbeat_and_a_killed_run_killed(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as st:
        rid = add_run(st, "k", status="killed")
    before = T.get_run(rid, path)
    T.set_note(rid, "  ran out of memory  ", path)
    T.set_tags(rid, {"oom": "yes"}, path)
    after = T.run_detail(rid, path)
    assert after["note"] == "ran out of memory" and after["tags"] == {"oom": "yes"}
    assert after["status"] == "killed"
    assert after["heartbeat_at"] == before["heartbeat_at"]
    T.set_note(rid, "", path)
    assert T.run_detail(rid, path)["note"] == ""
    with pytest.raises(StoreError, match="no run 99"):
        T.set_note(99, "x", path)
    with pytest.raises(ValueError, match="at most"):
        T.set_note(rid, "x" * 20_000, path)
    with pytest.raises(ValueError, match="1 to 200"):
        T.set_tags(rid, {" ": "x"}, path)


def test_a_rerun_links_back_to_its_original(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as st:
        first = add_run(st, "a")
        second = add_run(st, "a", tags={"rerun_of": str(first)})
        st.write(second, Changes(heartbeat=time.time()))
    assert T.run_detail(first, path)["reruns"] == [second]
    assert T.run_detail(second, path)["tags"]["rerun_of"] == str(first)


def test_param_filter_matches_json_and_plain_text(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as st:
        add_run(st, "a", params={"lr": 0.1, "opt": "adam", "flag": True})
    for text in ("lr=0.1", "opt=adam", 'opt="adam"', "flag=true"):
        key, value = text.split("=")
        got = T.runs_page(T.RunQuery(param=(key, value)), path)["total"]
        assert got == 1, text
    assert T.runs_page(T.RunQuery(param=("lr", "0.2")), path)["total"] == 0
    assert json.loads(json.dumps(T.jsonable({"x": math.nan}))) == {"x": "NaN"}
