"""A self-tuning loader's decisions, from the tracked run to `stoker runs show` and
the dashboard's data: recorded, read back, placed on the loader timeline."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

import stoker
import stoker.track.api as T
from stoker import BatchEvent
from stoker.cli import main

pytestmark = pytest.mark.timeout(60)

# rich markup and HTML in a decision's text must come out as the same text.
ODD_WHY = "[bold red]not markup[/] <b>nor html</b>"


class Sleepy:
    """4 ms per batch and a loop that never pauses: workers='auto' must grow."""

    def __len__(self) -> int:
        return 80

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(0.004)
        return np.full(16, i, dtype=np.int64)


@pytest.fixture
def tuned_run(any_store):
    with T.track("auto", store=any_store, capture=False) as run:
        with stoker.Loader(Sleepy(), workers="auto") as loader:
            for _ in range(2):
                for _ in loader:
                    pass
            summary = loader.stats.summary()
    assert summary["tuning"], "the controller made no decision: nothing to show"
    return any_store, run.id, summary


def invoke(*args: str):
    result = CliRunner().invoke(main, ["runs", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_decisions_reach_the_store_and_runs_show(tuned_run):
    store, run_id, summary = tuned_run
    doc = json.loads(invoke("show", str(run_id), "--store", str(store), "--json"))
    (ld,) = doc["loaders"]
    assert ld["summary"]["tuning"] == summary["tuning"]
    assert ld["settings"]["auto"] == ["workers"]
    assert ld["summary"]["workers"] == summary["workers"]

    out = invoke("show", str(run_id), "--store", str(store))
    assert f"auto: {summary['workers']} workers" in out
    assert "tuning" in out and "from → to" in out
    first = summary["tuning"][0]
    assert f"{first['from']} → {first['to']}" in out
    assert first["why"].split(";")[0] in " ".join(out.split())


def test_decisions_are_placed_on_the_loader_timeline(tuned_run):
    store, run_id, summary = tuned_run
    (ld,) = T.run_charts(run_id, store)["loaders"]
    decisions = ld["decisions"]
    assert [d["at_batch"] for d in decisions] == [
        d["at_batch"] for d in summary["tuning"]
    ]
    t = ld["timeline"]["t"]
    for d in decisions:
        # on the timeline's clock: within the span the buckets cover
        assert 0 <= d["t"] <= t[-1] + 1e-6, (d, t[-1])
        assert d["t"] >= d["at_s"] - 1e-6  # never before the first epoch began


def test_text_in_a_decision_stays_text(tmp_path):
    store = tmp_path / "store.db"
    decision = {"at_batch": 7, "at_s": 0.5, "setting": "workers", "from": 2, "to": 9}
    with T.track("odd", store=store, capture=False) as run:
        run.on_start("loader-1", {"workers": 2, "mode": "thread", "auto": ["workers"]})
        for i in range(3):
            run.on_batch(BatchEvent("loader-1", 0, i, i, 0.01, 0.02, 2, 8))
        run.on_close(
            "loader-1", {"workers": 9, "tuning": [{**decision, "why": ODD_WHY}]}
        )
    out = invoke("show", str(run.id), "--store", str(store))
    assert ODD_WHY in " ".join(out.split())
    assert "auto: 9 workers" in out and "2 → 9" in out
