"""A tracked process SIGKILLed mid-run: what it logged up to a second before is kept.

The child logs step i with value = the time it logged it, about every half
millisecond, so the store must hold a gap-free prefix of steps whose last value is
no older than one second before the kill; and a reader must then call the run killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import stoker.track.api as T
from stoker.track._store import Store

_CHILD = """
import sys, time
import stoker.track.api as T

with T.track("doomed", params={"lr": 0.1}, store=sys.argv[1]) as run:
    print(run.id, flush=True)
    step = 0
    while True:
        run.log(step=step, t=time.time())
        step += 1
        time.sleep(0.0005)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seconds", [0.3, 2.5])
def test_sigkill_keeps_everything_logged_a_second_before(tmp_path, seconds):
    store = tmp_path / "store.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read()
        run_id = int(line)
        time.sleep(seconds)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with Store.open(store) as st:
        points = [p for p in st.points(run_id) if p["key"] == "t"]
    steps = [p["step"] for p in points]
    assert steps == list(range(len(steps))), "a gap: a point was lost"
    last_logged = points[-1]["value"]
    # Everything logged up to a second before the kill is stored; since the child
    # logged without pause, the newest stored point is less than a second old.
    assert last_logged >= killed_at - 1.0, (killed_at - last_logged, len(steps))

    run = T.get_run(run_id, store)
    assert run["status"] == "killed"
    assert run["params"] == {"lr": 0.1}
    assert killed_at - 1.5 <= run["ended_at"] <= killed_at
    assert T.list_runs(store, status=["killed"])[0]["id"] == run_id


_OPEN_RUN = """
import sys
import stoker.track.api as T

run = T.track("left-open", store=sys.argv[1], capture=False).start()
run.log(step=0, x=1.0)
if sys.argv[2] == "raise":
    raise ValueError("uncaught at top level")
if sys.argv[2] == "term":
    import os, signal
    run.flush()
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("how", "status", "error"),
    [
        ("exit", "finished", None),
        ("raise", "failed", "ValueError: uncaught at top level"),
        ("term", "killed", None),
    ],
)
def test_a_run_left_open_gets_an_honest_status(tmp_path, how, status, error):
    store = tmp_path / "store.db"
    proc = subprocess.run(
        [sys.executable, "-c", _OPEN_RUN, str(store), how],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode != 0 if how != "exit" else proc.returncode == 0
    (run,) = T.list_runs(store)
    got = T.get_run(run["id"], store)
    assert got["status"] == status
    assert got["metrics"]["x"]["count"] == 1
    if error:
        assert error in got["error"]
