"""Eight processes tracking into one store at once: no error, no lost point."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import stoker.track.api as T
from stoker.track._store import Store

PROCESSES = 8
POINTS = 10_000

# Each child logs its points over about a second (a pause every 100 points), so the
# eight writers' transactions interleave for real instead of one after another.
_CHILD = """
import sys, time
import stoker.track.api as T

worker, points = int(sys.argv[2]), int(sys.argv[3])
with T.track(f"worker-{worker}", params={"worker": worker}, store=sys.argv[1]) as run:
    for i in range(points):
        run.log(step=i, x=float(i), worker=float(worker))
        if i % 100 == 99:
            time.sleep(0.01)
"""


@pytest.mark.timeout(120)
def test_eight_processes_into_one_new_store(tmp_path):
    store = tmp_path / "shared" / "store.db"  # created by the racing children
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(store), str(w), str(POINTS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=100) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert err == "", err  # not even a logged warning ("database is locked")

    runs = T.list_runs(store)
    assert len(runs) == PROCESSES
    assert {r["status"] for r in runs} == {"finished"}
    assert sorted(r["params"]["worker"] for r in runs) == list(range(PROCESSES))
    with Store.open(store) as st:
        for r in runs:
            points = [p for p in st.points(r["id"]) if p["key"] == "x"]
            assert [p["step"] for p in points] == list(range(POINTS)), r["name"]
            assert [p["value"] for p in points] == [float(i) for i in range(POINTS)]
            (worker,) = {p["value"] for p in st.points(r["id"]) if p["key"] == "worker"}
            assert worker == r["params"]["worker"]


@pytest.mark.timeout(60)
def test_threads_of_one_process_tracking_separate_runs(tmp_path):
    store = tmp_path / "store.db"
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with T.track(f"thread-{i}", store=store, capture=False) as run:
                for step in range(2_000):
                    run.log(step=step, x=float(step))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    runs = T.list_runs(store)
    assert len(runs) == 4
    assert all(r["metrics"]["x"] == 1999.0 for r in runs)
    assert (
        sum(T.get_run(r["id"], store)["metrics"]["x"]["count"] for r in runs) == 8_000
    )
