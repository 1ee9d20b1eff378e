"""Eight processes logging while the dashboard polls: no lock error, no lost point.

The store's own concurrency test (tests/integration/test_track_concurrency.py), with
the dashboard's read-only reads polling every 0.5 s the whole time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import stoker.track.api as T
from stoker.ui import UIOptions, create_app

PROCESSES = 8
POINTS = 3_000
_CHILD = """
import sys, time
import stoker.track.api as T

worker, points = int(sys.argv[2]), int(sys.argv[3])
with T.track(f"worker-{worker}", params={"worker": worker}, store=sys.argv[1]) as run:
    for i in range(points):
        run.log(step=i, x=float(i))
        if i % 100 == 99:
            time.sleep(0.02)
"""


@pytest.mark.timeout(120)
def test_eight_writers_while_the_dashboard_polls(tmp_path):
    store = tmp_path / "store.db"
    T.Store.open(store, create=True).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(store), str(w), str(POINTS)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    stop, failures, rounds = threading.Event(), [], [0]
    client = TestClient(create_app(UIOptions(store=store)), base_url="http://127.0.0.1")

    def poll() -> None:
        while not stop.is_set():
            page = client.get("/api/runs")
            if page.status_code != 200:
                failures.append(page.text)
            for r in page.json().get("runs", []):
                charts = client.get(f"/api/runs/{r['id']}/charts")
                if charts.status_code != 200:
                    failures.append(charts.text)
            rounds[0] += 1
            stop.wait(0.5)

    with client:
        poller = threading.Thread(target=poll, name="ui-poller")
        poller.start()
        try:
            errors = [p.communicate(timeout=100)[1] for p in procs]
        finally:
            time.sleep(0.5)  # one more round after the last write
            stop.set()
            poller.join(timeout=30)
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0 and err == "", err
    assert not failures, failures[:3]
    assert rounds[0] >= 2
    runs = T.list_runs(store)
    assert len(runs) == PROCESSES and {r["status"] for r in runs} == {"finished"}
    for r in runs:
        assert T.get_run(r["id"], store)["metrics"]["x"]["count"] == POINTS
