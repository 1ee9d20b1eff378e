"""``stoker bench`` with "auto" beside the fixed points, and ``--trace DIR``."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from stoker import ConfigError, bench
from stoker.bench.peers import TorchRunner
from stoker.bench.report import ROW_FIELDS, auto_lines, is_auto
from stoker.bench.runners import Setting, trace_path
from stoker.cli import main

pytestmark = pytest.mark.timeout(90)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 10 ms per batch and a consumer that never pauses: the loop waits, so auto grows
# within the run's 48 batches.
QUICK = ["latency", "--latency", "0.01", "--batches", "48", "--no-track"]


def invoke(*args: str):
    return CliRunner().invoke(main, ["bench", *args])


def _ended(decisions, start):
    """The worker count the decisions lead to, from the starting pool."""
    workers = start
    for d in decisions:
        if d["setting"] == "workers":
            assert d["from"] == workers
            workers = d["to"]
    return workers


def test_auto_is_a_row_of_its_own_with_where_it_ended(tmp_path):
    chart, js, csv_path = tmp_path / "c.png", tmp_path / "r.json", tmp_path / "r.csv"
    args = [*QUICK, "--workers", "1,auto", "--mode", "thread", "--repeat", "2"]
    result = invoke(*args, "--chart", str(chart), "--json", "-o", str(js))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "auto→" in out and "tuned" in out  # the W cell and the column
    assert "auto (thread workers=auto max_queue_size=10): " in out
    assert "of the fastest fixed setting; ended at thread workers=" in out
    # the fastest *fixed* setting: auto is measured against it, never named as it
    assert "fastest stoker setting: thread workers=1 max_queue_size=10" in out
    assert "auto (thread workers=auto max_queue_size=10): " in out
    assert chart.read_bytes()[:8] == PNG_MAGIC

    rows = json.loads(js.read_text())["results"]
    assert [(r["loader"], r["workers"]) for r in rows] == [
        ("serial", 1),
        ("stoker", 1),
        ("stoker", "auto"),
    ]
    fixed, auto = rows[1], rows[2]
    assert set(auto) == {*ROW_FIELDS, "samples", "extras"}
    assert fixed["tuned_workers"] is None and fixed["tuning_decisions"] is None
    assert auto["status"] == "ok" and auto["repeats"] == 2
    assert (auto["tuned_mode"], auto["tuned_queue"]) == ("thread", 10)
    for sample in auto["samples"]:
        tuned = sample["tuned"]
        assert tuned["decisions"] == len(tuned["tuning"])
        assert tuned["workers"] == _ended(tuned["tuning"], start=2)
        for d in tuned["tuning"]:
            assert {"at_batch", "setting", "from", "to", "why"} <= set(d)
    assert any(s["tuned"]["decisions"] for s in auto["samples"]), auto["samples"]
    median = [s["tuned"] for s in auto["samples"]]
    assert auto["tuned_workers"] in [t["workers"] for t in median]
    assert auto["efficiency"] == pytest.approx(auto["speedup"] / auto["tuned_workers"])
    assert "tuned" not in auto["extras"]  # per sample, not repeated

    csv_args = [*QUICK, "--workers", "auto", "--mode", "thread", "--repeat", "1"]
    result = invoke(*csv_args, "--no-chart", "--csv", "-o", str(csv_path))
    assert result.exit_code == 0, result.output
    with csv_path.open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == ROW_FIELDS
        serial, row = list(reader)
    assert (row["loader"], row["mode"], row["workers"]) == ("stoker", "thread", "auto")
    assert (row["tuned_mode"], row["tuned_queue"]) == ("thread", "10")
    assert int(row["tuned_workers"]) >= 2 and row["tuning_decisions"].isdigit()
    assert serial["tuned_workers"] == ""  # fixed rows leave them empty


def test_auto_queue_and_auto_mode_are_points_too():
    result = bench.sweep(
        bench.make_workload("latency", batches=16, latency=0.002),
        workers=[2],
        modes=["auto"],
        queues=["auto"],
        repeat=1,
    )
    (row,) = bench.rows(result)[1:]
    assert (row["mode"], row["workers"], row["queue"]) == ("auto", 2, "auto")
    assert is_auto(row) and row["status"] == "ok", row
    # use_multiprocessing="auto" starts on threads: a sleep never holds the GIL
    assert row["tuned_mode"] == "thread" and row["tuned_workers"] == 2
    assert isinstance(row["tuned_queue"], int) and row["tuned_queue"] >= 1
    assert auto_lines(result)[0].startswith(
        "auto (auto workers=2 max_queue_size=auto): "
    )
    assert bench.best(result) is None  # no fixed setting ran: nothing to beat


def test_peers_skip_the_auto_points_and_say_so(tmp_path):
    pytest.importorskip("torch")
    result = bench.sweep(
        bench.make_workload("tiny", batches=8),
        workers=[1, "auto"],
        modes=["thread"],
        repeat=1,
        compare=["torch"],
    )
    settings = [(r.setting.loader, r.setting.workers) for r in result.results]
    assert settings == [("stoker", 1), ("stoker", "auto"), ("torch", 1)]
    assert "torch: takes fixed numbers; the 'auto' points are stoker's" in result.notes
    with pytest.raises(ConfigError, match="only stoker sizes itself"):
        bench.measure(
            TorchRunner(),
            result.workload.source,
            Setting("torch", "process", "auto", 10),
        )


def test_auto_row_is_recorded_at_the_pool_it_ended_with(tmp_path):
    track = pytest.importorskip("stoker.track")
    result = bench.sweep(
        bench.make_workload("latency", batches=16, latency=0.002),
        workers=[1, "auto"],
        modes=["thread"],
        repeat=1,
    )
    store = str(tmp_path / "store.db")
    run = bench.record(result, store=store)
    metrics = track.get_run(run.id, store=store)["metrics"]
    auto = bench.rows(result)[2]
    series = metrics["stoker.thread.q10.auto.batches_per_s"]
    assert (series["count"], series["step"]) == (1, auto["tuned_workers"])
    assert series["last"] == pytest.approx(auto["batches_per_s"])
    decisions = metrics["stoker.thread.q10.auto.tuning_decisions"]["last"]
    assert decisions == auto["tuning_decisions"]


def _lanes(events):
    return {
        e["tid"]: e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


def test_trace_writes_one_valid_trace_per_setting(tmp_path):
    folder = tmp_path / "traces"  # created by the command
    result = invoke(
        # 10 ms batches, 48 of them: long enough for auto to decide within the run
        "latency",
        "--latency",
        "0.01",
        "--batches",
        "48",
        "--no-track",
        "--workers",
        "2,auto",
        "--mode",
        "thread,process",
        "--repeat",
        "1",
        "--no-chart",
        "--trace",
        str(folder),
        "--json",
        "-o",
        str(tmp_path / "r.json"),
    )
    assert result.exit_code == 0, result.output
    tuned = {
        f"{r['mode']}-wauto-q10.trace.json": r["samples"][0]["tuned"]["tuning"]
        for r in json.loads((tmp_path / "r.json").read_text())["results"]
        if r["workers"] == "auto"
    }
    assert any(tuned.values()), "auto decided nothing: the trace check is vacuous"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "process-w2-q10.trace.json",
        "process-wauto-q10.trace.json",
        "thread-w2-q10.trace.json",
        "thread-wauto-q10.trace.json",
    ]
    assert "traces (4; open in https://ui.perfetto.dev):" in result.stdout
    for name in names:
        assert f"  {folder / name}\n" in result.stdout
        doc = json.loads((folder / name).read_text())
        events = doc["traceEvents"]
        for e in events:  # the Chrome trace event format's required fields
            assert {"name", "ph", "pid", "tid"} <= set(e), e
            assert e["ph"] in {"X", "B", "E", "i", "I", "C", "M"}, e
            if e["ph"] != "M":
                assert isinstance(e["ts"], (int, float)), e
            if e["ph"] == "X":
                assert e["dur"] >= 0, e
            if e["ph"] == "C":
                assert all(isinstance(v, (int, float)) for v in e["args"].values())
            if e["ph"] == "i":
                assert e["s"] in {"g", "p", "t"}, e
        lanes = _lanes(events)
        workers = {tid for tid, lane in lanes.items() if lane.startswith("worker ")}
        assert "consumer (training loop)" in lanes.values()
        assert workers, lanes
        spans = [e for e in events if e["ph"] == "X" and e["tid"] in workers]
        # every batch of the run is a span on a worker's lane
        assert len(spans) == 48, (name, len(spans))
        assert {e["tid"] for e in spans} <= workers
        if name.startswith("thread-w2"):
            assert len(workers) <= 2
        # the decisions of that run, as instant events with their why
        instants = [e for e in events if e["ph"] == "i" and e.get("cat") == "tuning"]
        expected = tuned.get(name, [])
        assert [e["args"]["why"] for e in instants] == [d["why"] for d in expected]


def test_trace_needs_a_folder_it_can_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create the folder"):
        bench.sweep(
            bench.make_workload("tiny", batches=4),
            workers=[1],
            modes=["thread"],
            repeat=1,
            trace_dir=blocker / "traces",
        )
    assert trace_path("t", Setting("torch", "process", 4, 10)).name == (
        "torch-process-w4-q10.trace.json"
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0,auto", "expected whole numbers >= 1 or auto"), ("1,autoo", "or auto")],
)
def test_bad_auto_lists_are_usage_errors(value, fragment):
    result = invoke("tiny", "--workers", value)
    assert result.exit_code == 2
    assert fragment in result.output
    result = invoke("tiny", "--queue", value)
    assert result.exit_code == 2 and fragment in result.output


def test_chart_draws_auto_queues_and_modes_beside_numbers(tmp_path):
    pytest.importorskip("matplotlib")
    result = bench.sweep(
        bench.make_workload("tiny", batches=20),
        workers=[1, "auto"],
        modes=["thread", "auto"],
        queues=[10, "auto"],
        repeat=1,
    )
    assert len(result.results) == 8
    assert all(r.status == "ok" for r in result.results), result.notes
    path = bench.draw_chart(result, tmp_path / "c.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
