"""`stoker sweep` end to end on tiny scripts: a failing trial, --resume, --as-args,
Ctrl-C with no orphan left, and a sweep into the PostgreSQL store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import stoker.track.api as T
from stoker.track._liveness import process_alive

pytestmark = pytest.mark.timeout(120)

TINY = """
import os, sys
import stoker
a = stoker.param("a", default=0)
b = stoker.param("b", default="x")
with stoker.track("tiny", sample=False, capture=False) as run:
    run.log(v=a * 10)
    if a == 2 and b == "y" and not os.environ.get("TINY_FIXED"):
        raise RuntimeError("boom on purpose")
"""


def _sweep(tmp_path: Path, *args: str, env: dict | None = None, store=None):
    return subprocess.run(
        [sys.executable, "-m", "stoker", "sweep", "--no-chart", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        env={
            **os.environ,
            "STOKER_STORE": str(store or tmp_path / "s.db"),
            **(env or {}),
        },
    )


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(TINY))
    return path


def test_a_2x2_grid_with_one_failing_trial_then_resume(tmp_path, tiny):
    store = tmp_path / "s.db"
    cmd = [
        "--name",
        "g",
        "--grid",
        "a=1,2",
        "--grid",
        "b=x,y",
        "--",
        sys.executable,
        str(tiny),
    ]
    proc = _sweep(tmp_path, *cmd)
    assert proc.returncode == 1, proc.stderr  # a trial failed; the sweep went on
    assert "trial a=2,b=y#1 failed: exit code 1: RuntimeError: boom on purpose" in (
        proc.stderr
    )
    sweep = T.get_sweep("g", store)
    status = {t["trial"]: t["status"] for t in sweep["trials"]}
    assert status == {
        "a=1,b=x#1": "finished",
        "a=1,b=y#1": "finished",
        "a=2,b=x#1": "finished",
        "a=2,b=y#1": "failed",
    }
    failed = next(t for t in sweep["trials"] if t["status"] == "failed")
    assert failed["returncode"] == 1
    assert "Traceback" in failed["log_tail"] and "boom on purpose" in failed["log_tail"]
    runs = T.list_runs(store, tags={"sweep": "g"})
    assert len(runs) == 4  # the failed trial tracked its run too
    by_trial = {r["tags"]["sweep_trial"]: r for r in runs}
    assert by_trial["a=2,b=x#1"]["params"] == {"a": 2, "b": "x"}
    assert by_trial["a=2,b=y#1"]["status"] == "failed"
    assert "sweep g (finished)" in proc.stdout

    proc = _sweep(tmp_path, "--resume", "g", env={"TINY_FIXED": "1"})
    assert proc.returncode == 0, proc.stderr
    sweep = T.get_sweep("g", store)
    assert {t["status"] for t in sweep["trials"]} == {"finished"}
    assert len(T.list_runs(store, tags={"sweep": "g"})) == 5  # only one ran again
    assert sweep["status"] == "finished"


def test_as_args_passes_params_as_flags(tmp_path):
    script = tmp_path / "flags.py"
    script.write_text(
        textwrap.dedent("""
        import argparse, json
        import stoker
        p = argparse.ArgumentParser()
        p.add_argument("--workers", type=int, default=1)
        args = p.parse_args()
        with stoker.track("flags", {"seen": args.workers}, capture=False,
                          sample=False):
            pass
    """)
    )
    proc = _sweep(
        tmp_path,
        "--name",
        "f",
        "--as-args",
        "--grid",
        "workers=2,3",
        "--",
        sys.executable,
        str(script),
    )
    assert proc.returncode == 0, proc.stderr
    seen = sorted(r["params"]["seen"] for r in T.list_runs(tmp_path / "s.db"))
    assert seen == [2, 3]
    from stoker.sweep import draw, sweep_rows

    table = sweep_rows("f", str(tmp_path / "s.db"))
    assert [r["workers"] for r in table["rows"]] == [2, 3]
    assert table["rows"][0]["speedup"] == 1.0  # the fewest workers is the base
    png = draw(table, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_usage_is_explained(tmp_path):
    proc = _sweep(tmp_path, "--grid", "workers", "--", "true")
    assert proc.returncode == 2 and "NAME=V1,V2" in proc.stderr
    proc = _sweep(tmp_path, "--grid", "workers=1")
    assert proc.returncode == 2 and "a command after `--`" in proc.stderr
    proc = _sweep(tmp_path, "--resume", "nope", "--grid", "a=1")
    assert proc.returncode == 2 and "give neither" in proc.stderr


def test_ctrl_c_stops_every_trial_and_leaves_no_orphan(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(
        textwrap.dedent("""
        import os, subprocess, sys, time
        import stoker
        a = stoker.param("a", default=0)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(f"pids-{a}", "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        with stoker.track("sleeper", capture=False, sample=False):
            time.sleep(120)
    """)
    )
    store = tmp_path / "s.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stoker",
            "sweep",
            "--no-chart",
            "--name",
            "c",
            "--parallel",
            "2",
            "--grid",
            "a=1,2",
            "--",
            sys.executable,
            str(script),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STOKER_STORE": str(store)},
    )
    deadline = time.monotonic() + 60
    files = [tmp_path / "pids-1", tmp_path / "pids-2"]
    while not all(f.exists() and f.read_text() for f in files):
        assert time.monotonic() < deadline, "the trials did not start"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    pids = [int(p) for f in files for p in f.read_text().split()]
    assert all(process_alive(p, None) for p in pids)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with `stoker sweep --resume c`" in err
    deadline = time.monotonic() + 10
    while any(process_alive(p, None) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if process_alive(p, None)], "orphans left"
    sweep = T.get_sweep("c", store)
    assert sweep["status"] == "stopped"
    assert {t["status"] for t in sweep["trials"]} == {"stopped"}
    # The trials' runs recorded the interruption themselves (SIGINT first).
    assert {r["status"] for r in T.list_runs(store)} == {"killed"}


def test_a_sweep_into_the_team_store_and_its_table_later(tmp_path, tiny, pg_url):
    proc = _sweep(
        tmp_path,
        "--name",
        "pg",
        "--grid",
        "a=1,3",
        "--json",
        "--metric",
        "v",
        "--",
        sys.executable,
        str(tiny),
        store=pg_url,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    assert [(r["a"], r["finished"]) for r in table["rows"]] == [(1, 1), (3, 1)]
    assert [r["metric"] for r in table["rows"]] == [10.0, 30.0]
    later = subprocess.run(
        [
            sys.executable,
            "-m",
            "stoker",
            "runs",
            "compare",
            "--sweep",
            "pg",
            "--store",
            pg_url,
            "--json",
            "--metric",
            "v",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["rows"] == table["rows"]
