"""``stoker bench`` through click's test runner, on tiny settings."""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from stoker.bench.report import ROW_FIELDS, SCHEMA, SCHEMA_VERSION, TOP_FIELDS
from stoker.cli import main

pytestmark = pytest.mark.timeout(60)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--workers", "1,2", "--mode", "thread", "--batches", "4", "--repeat", "2"]


def invoke(*args: str):
    return CliRunner().invoke(main, ["bench", *args])


def test_latency_prints_table_and_writes_chart_json_csv(tmp_path):
    chart, js = tmp_path / "c.png", tmp_path / "r.json"
    result = invoke(
        "latency",
        *TINY,
        "--latency",
        "0.002",
        "--no-track",
        "--chart",
        str(chart),
        "--json",
        "-o",
        str(js),
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "stoker bench latency" in out
    assert "serial" in out and "thread" in out
    assert "fastest stoker setting: thread" in out
    assert f"chart: {chart}" in out
    assert chart.read_bytes()[:8] == PNG_MAGIC

    doc = json.loads(js.read_text())
    assert tuple(doc) == TOP_FIELDS
    assert (doc["schema"], doc["version"]) == (SCHEMA, SCHEMA_VERSION)
    assert doc["command"] is None  # not typed in a shell
    assert doc["workload"]["params"] == {"batches": 4, "latency_s": 0.002}
    rows = doc["results"]
    assert [(r["loader"], r["workers"]) for r in rows] == [
        ("serial", 1),
        ("stoker", 1),
        ("stoker", 2),
    ]
    for row in rows:
        assert set(row) == {*ROW_FIELDS, "samples", "extras"}
        assert row["status"] == "ok" and row["repeats"] == 2 and row["batches"] == 4
        assert len(row["samples"]) == 2
        # 4 batches of float32 [128,28,28,1] + int64 [128]
        assert row["samples"][0]["bytes"] == 4 * (128 * 28 * 28 * 4 + 128 * 8)
    assert rows[0]["speedup"] == pytest.approx(1.0)
    assert rows[2]["efficiency"] == pytest.approx(rows[2]["speedup"] / 2)


@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_json_and_csv_print_the_results_instead_of_the_table(fmt):
    args = ["tiny", "--workers", "1,2", "--mode", "thread", "--batches", "5"]
    result = invoke(*args, "--repeat", "1", "--no-chart", "--no-track", fmt)
    assert result.exit_code == 0, result.output
    if fmt == "--json":
        doc = json.loads(result.stdout)  # stdout holds the JSON and nothing else
        assert [r["loader"] for r in doc["results"]] == ["serial", "stoker", "stoker"]
    else:
        table = list(csv.DictReader(io.StringIO(result.stdout)))
        assert tuple(table[0]) == ROW_FIELDS
        assert [r["loader"] for r in table] == ["serial", "stoker", "stoker"]


def test_output_needs_a_format(tmp_path):
    result = invoke("tiny", "--no-track", "-o", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and "pass one" in result.output


def test_default_chart_goes_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(
        "tiny",
        "--workers",
        "1",
        "--mode",
        "thread",
        "--batches",
        "20",
        "--repeat",
        "1",
        "--no-track",
    )
    assert result.exit_code == 0, result.output
    charts = list(tmp_path.glob("stoker-bench-tiny-*.png"))
    assert len(charts) == 1
    assert f"chart: {charts[0]}" in result.stdout
    assert charts[0].read_bytes()[:8] == PNG_MAGIC


def test_no_chart_writes_no_png(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(
        "tiny",
        "--workers",
        "1",
        "--mode",
        "thread",
        "--batches",
        "10",
        "--repeat",
        "1",
        "--no-chart",
        "--no-track",
    )
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.png"))


def write_module(tmp_path, monkeypatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def assert_clean_error(result, *fragments: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


def test_user_workload_that_raises_gives_one_clear_line(tmp_path, monkeypatch):
    mod = write_module(
        tmp_path,
        monkeypatch,
        "wl_raises",
        """
        def make_source():
            raise RuntimeError("no data folder configured")
    """,
    )
    result = invoke(f"{mod}:make_source", *TINY, "--no-track", "--no-chart")
    assert_clean_error(
        result, "make_source() raised RuntimeError", "no data folder configured"
    )


def test_user_source_whose_batches_raise_names_the_batch(tmp_path, monkeypatch):
    mod = write_module(
        tmp_path,
        monkeypatch,
        "wl_bad_batch",
        """
        class Source:
            def __len__(self):
                return 5
            def __getitem__(self, i):
                if i == 3:
                    raise KeyError("label 7 missing")
                return [i]
        def make_source():
            return Source()
    """,
    )
    result = invoke(f"{mod}:make_source", *TINY, "--no-track", "--no-chart")
    assert_clean_error(result, "source[3] raised KeyError", "label 7 missing")


def test_user_workload_that_returns_no_source(tmp_path, monkeypatch):
    mod = write_module(
        tmp_path,
        monkeypatch,
        "wl_not_source",
        """
        def make_source():
            return 42
    """,
    )
    result = invoke(f"{mod}:make_source", *TINY, "--no-track", "--no-chart")
    assert_clean_error(result, "returned a int, not a source", "__getitem__")


def test_user_workload_runs_and_batches_caps_it(tmp_path, monkeypatch):
    mod = write_module(
        tmp_path,
        monkeypatch,
        "wl_good",
        """
        import numpy as np
        class Source:
            def __len__(self):
                return 100
            def __getitem__(self, i):
                return np.full(8, i, dtype=np.float64)
        def make_source():
            "Eight float64 per batch."
            return Source()
    """,
    )
    js = tmp_path / "r.json"
    result = invoke(
        f"{mod}:make_source", *TINY, "--no-track", "--no-chart", "--json", "-o", str(js)
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["workload"]["description"] == "Eight float64 per batch."
    assert {r["batches"] for r in doc["results"]} == {4}
    assert doc["results"][1]["samples"][0]["bytes"] == 4 * 64


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nosuch"], "unknown workload 'nosuch'"),
        (["nosuch_module_xyz:f"], "cannot import module 'nosuch_module_xyz'"),
        (["json:nosuch"], "has no attribute 'nosuch'"),
        (["tiny", "--latency", "0.1"], "latency applies only to the 'latency'"),
        (["tiny", "--mode", "greenlet"], "mode=['greenlet']"),
        (["tiny", "--compare", "tensorflow"], "compare=['tensorflow']"),
    ],
)
def test_bad_input_is_one_clear_line(args, fragment):
    assert_clean_error(invoke(*args, "--no-track", "--no-chart"), fragment)


def test_bad_worker_list_is_a_usage_error():
    result = invoke("tiny", "--workers", "one,two")
    assert result.exit_code == 2
    assert "expected whole numbers" in result.output


def test_unavailable_peer_is_said_plainly(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # import keras -> ImportError
    result = invoke(
        "tiny",
        "--workers",
        "1",
        "--mode",
        "thread",
        "--batches",
        "10",
        "--repeat",
        "1",
        "--compare",
        "keras",
        "--no-track",
        "--no-chart",
    )
    assert result.exit_code == 0, result.output
    assert "keras: not run. Keras is not installed" in result.stdout
    assert "pip install 'stoker[keras]'" in result.stdout


@pytest.mark.keras
def test_compare_runs_keras_and_torch_on_the_same_source(tmp_path):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    js = tmp_path / "r.json"
    result = invoke(
        "latency",
        "--workers",
        "1,2",
        "--mode",
        "thread",
        "--batches",
        "4",
        "--repeat",
        "1",
        "--latency",
        "0.001",
        "--compare",
        "keras,torch",
        "--no-track",
        "--no-chart",
        "--json",
        "-o",
        str(js),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    got = {(r["loader"], r["mode"], r["workers"]): r for r in doc["results"]}
    for key in [
        ("keras", "thread", 1),
        ("keras", "thread", 2),
        ("torch", "process", 1),
        ("torch", "process", 2),
    ]:
        assert got[key]["status"] == "ok", got[key]
        assert got[key]["batches"] == 4
        assert got[key]["samples"][0]["bytes"] == 4 * (128 * 28 * 28 * 4 + 128 * 8)
    assert [p["name"] for p in doc["peers"] if p["available"]] == ["keras", "torch"]
    assert "torch: has no thread workers; ran in process mode" in result.stdout


def test_json_records_the_command_as_typed(tmp_path, monkeypatch):
    args = [
        "tiny",
        "--workers",
        "1",
        "--mode",
        "thread",
        "--batches",
        "5",
        "--repeat",
        "1",
        "--no-chart",
        "--no-track",
        "--json",
        "-o",
        str(tmp_path / "r.json"),
    ]
    monkeypatch.setattr(sys, "argv", ["/usr/bin/stoker", "bench", *args])
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["command"] == "stoker bench " + " ".join(args)


def test_track_records_the_sweep(tmp_path, monkeypatch):
    pytest.importorskip("stoker.track")
    monkeypatch.setenv("STOKER_STORE", str(tmp_path / "store.db"))
    result = invoke(
        "tiny",
        "--workers",
        "1",
        "--mode",
        "thread",
        "--batches",
        "5",
        "--repeat",
        "1",
        "--no-chart",
    )
    assert result.exit_code == 0, result.output
    assert "tracking: recorded as run 1" in result.stdout
    assert (tmp_path / "store.db").exists()
