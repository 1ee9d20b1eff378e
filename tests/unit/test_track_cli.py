"""``stoker runs`` through click's test runner."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import stoker.track.api as T
from stoker import BatchEvent
from stoker.cli import main


@pytest.fixture
def store(any_store):
    path = any_store
    for name, lr in (("alpha", 0.1), ("beta", 0.2)):
        with T.track(name, {"lr": lr, "seed": 1}, path, capture=False) as run:
            run.set_tags(owner="me")
            run.on_start("loader-1", {"workers": 3, "mode": "thread", "seed": 42})
            for step in range(4):
                run.on_batch(BatchEvent("loader-1", 0, step, step, 0.01, 0.02, 2, 8))
                run.log(step=step, loss=lr * (4 - step))
            run.on_close(
                "loader-1",
                {"batches": 4, "throughput_bps": 123.0, "verdict": "input-bound"},
            )
    with pytest.raises(RuntimeError), T.track("gamma", store=path, capture=False):
        raise RuntimeError("diverged")
    return str(path)


def invoke(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["runs", *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_list_table_and_json(store):
    out = invoke("--store", store).stdout
    assert "alpha" in out and "beta" in out and "failed" in out
    rows = json.loads(invoke("--store", store, "--json").stdout)
    assert [r["name"] for r in rows] == ["gamma", "beta", "alpha"]
    assert rows[1]["params"] == {"lr": 0.2, "seed": 1}


def test_list_filters(store):
    def names(*args):
        return [
            r["name"]
            for r in json.loads(invoke("--store", store, "--json", *args).stdout)
        ]

    assert names("--status", "failed") == ["gamma"]
    assert names("--status", "finished", "--status", "failed") == [
        "gamma",
        "beta",
        "alpha",
    ]
    assert names("--param", "lr=0.1") == ["alpha"]
    assert names("--tag", "owner=me") == ["beta", "alpha"]
    assert names("--name", "al*") == ["alpha"]
    assert names("--since", "1h", "--limit", "2") == ["gamma", "beta"]
    bad = invoke("--store", store, "--param", "lr", ok=False)
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    bad = invoke("--store", store, "--since", "yesterday", ok=False)
    assert bad.exit_code == 2 and "duration" in bad.output


def test_store_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("STOKER_STORE", store)
    assert len(json.loads(invoke("--json").stdout)) == 3


def test_show_has_params_metrics_and_loader_statistics(store):
    out = invoke("show", "2", "--store", store).stdout
    for text in ("beta", "finished", "lr", "0.2", "loss", "loader loader-1"):
        assert text in out, text
    assert "3 workers" in out and "seed 42" in out and "input-bound" in out
    doc = json.loads(invoke("--store", store, "show", "2", "--json").stdout)
    assert doc["metrics"]["loss"]["last"] == pytest.approx(0.2)
    assert doc["loaders"][0]["summary"]["throughput_bps"] == 123.0
    assert doc["loaders"][0]["batches_recorded"] == 4
    failed = invoke("show", "3", "--store", store).stdout
    assert "RuntimeError: diverged" in failed


def test_compare(store):
    out = invoke("compare", "1", "2", "--store", store).stdout
    assert "lr" in out and "seed" not in out  # only what differs
    assert "seed" in invoke("compare", "1", "2", "--all", "--store", store).stdout
    doc = json.loads(invoke("compare", "1", "2", "--json", "--store", store).stdout)
    assert doc["differing_params"] == ["lr"]
    assert doc["metrics"]["loss"] == [pytest.approx(0.1), pytest.approx(0.2)]


def test_export(store, tmp_path):
    out = invoke("export", "1", "--csv", "--store", store).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["key"] for r in rows if r["kind"] == "metric"] == ["loss"] * 4
    assert {r["kind"] for r in rows} == {"metric", "system"}
    target = tmp_path / "run1.json"
    invoke("export", "1", "--json", "-o", str(target), "--store", store)
    doc = json.loads(target.read_text())
    assert doc["name"] == "alpha"
    assert len([p for p in doc["points"] if p["kind"] == "metric"]) == 4
    out = invoke("export", "1", "--csv", "--batches", "--store", store).stdout
    assert len(list(csv.DictReader(io.StringIO(out)))) == 4


def test_delete_asks_unless_yes(store):
    result = CliRunner().invoke(
        main, ["runs", "delete", "1", "--store", store], input="n\n"
    )
    assert result.exit_code == 1 and "Aborted" in result.output
    invoke("delete", "1", "2", "--yes", "--store", store)
    assert [r["id"] for r in json.loads(invoke("--store", store, "--json").stdout)] == [
        3
    ]


def test_errors_exit_1_with_the_stores_message(store, tmp_path):
    result = invoke("show", "99", "--store", store, ok=False)
    assert result.exit_code == 1 and "no run 99" in result.output
    missing = str(tmp_path / "nothing.db")
    result = invoke("--store", missing, ok=False)
    assert result.exit_code == 1 and "no stoker store" in result.output
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    result = invoke("--store", str(junk), ok=False)
    assert result.exit_code == 1 and "not a stoker store" in result.output
    assert junk.read_text() == "not a database"


def test_rerun_refuses_a_run_without_git(store):
    result = invoke("rerun", "1", "--store", store, ok=False)
    assert result.exit_code == 1 and "cannot re-run run 1" in result.output


def test_bench_records_are_listed_only_when_asked(store):
    tags = {"kind": "bench", "workload": "latency"}
    with T.track("bench-latency", {"workers": 2}, store, tags=tags, capture=False):
        pass
    names = [r["name"] for r in json.loads(invoke("--store", store, "--json").stdout)]
    assert names == ["gamma", "beta", "alpha"]
    everything = json.loads(invoke("--store", store, "--bench", "--json").stdout)
    assert [r["name"] for r in everything] == [
        "bench-latency",
        "gamma",
        "beta",
        "alpha",
    ]
    tagged = json.loads(
        invoke("--store", store, "--tag", "kind=bench", "--json").stdout
    )
    assert [r["name"] for r in tagged] == ["bench-latency"]


def test_piped_tables_are_not_folded(store):
    long_name = "a-run-with-a-rather-long-descriptive-name-" * 3
    with T.track(long_name, {"lr": 1}, store, capture=False):
        pass
    out = invoke("--store", store).stdout  # CliRunner: not a terminal
    assert long_name in out  # whole, on one line
