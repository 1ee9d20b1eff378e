"""Stores with known content for the dashboard's tests and benchmark.

Written straight through ``Store`` (no tracking thread), so a store with 10,000 runs
or a million points takes seconds, and every value is known to the tests.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from stoker.track._store import Changes, Store

XSS = "<script>alert('x')</script>\"'><img src=x onerror=alert(1)>"


def add_run(
    st: Store,
    name: str,
    *,
    params: dict | None = None,
    tags: dict | None = None,
    metrics: dict[str, list[float]] | None = None,
    status: str = "finished",
    created_at: float | None = None,
    duration_s: float = 10.0,
    pid: int | None = None,
    batches: int = 0,
) -> int:
    """Insert one run with its params, tags, metric lists (step = index) and batches."""
    now = created_at if created_at is not None else time.time()
    run_id = st.create_run(
        name=name,
        created_at=now,
        heartbeat_at=now + duration_s,
        host=os.uname().nodename,
        pid=pid or 0,
        command=json.dumps(["python", "train.py", "--lr", "0.1"]),
        cwd="/tmp/project",
        git_commit="0123456789abcdef0123456789abcdef01234567",
        environment=json.dumps({"python": "3.11", "packages": {"numpy": "2.0"}}),
    )
    ch = Changes(heartbeat=now + duration_s)
    ch.params = [(k, json.dumps(v)) for k, v in (params or {}).items()]
    ch.tags = list((tags or {}).items())
    for key, values in (metrics or {}).items():
        ch.points += [("metric", key, i, now + i, v) for i, v in enumerate(values)]
    ch.points += [("system", "cpu_percent", i, now + i, 50.0 + i % 7) for i in range(5)]
    if batches:
        ch.loader_starts = [("loader-0", now, json.dumps({"workers": 4}))]
        ch.batches = [
            ("loader-0", 0, i, i, now + 0.01 * i, 0.002 * (i % 5), 0.008, 3, 1000)
            for i in range(batches)
        ]
        summary = {
            "verdict": "input-bound",
            "advice": "add workers",
            "wait_fraction": 0.2,
            "epochs": 3,
            "elapsed_s": 3 * duration_s / 4,
            "throughput_bps": batches / duration_s,
        }
        ch.summaries = [("loader-0", json.dumps(summary), now + duration_s)]
    if status != "running":
        ch.final = (status, now + duration_s, None)
    st.write(run_id, ch)
    return run_id


def demo_store(path: Path) -> dict[str, int]:
    """A small store: scaling runs, an XSS-named run, a bench sweep; returns ids."""
    ids = {}
    with Store.open(path, create=True) as st:
        t0 = time.time() - 3600
        for i, (mode, w) in enumerate(
            (m, w) for m in ("threads", "processes") for w in (1, 2, 4)
        ):
            loss = [2.0 * math.exp(-s / 30) + 0.01 * (s % 3) for s in range(100)]
            ids[f"{mode}-{w}"] = add_run(
                st,
                f"scale-{mode}-{w}",
                params={"mode": mode, "workers": w, "lr": 0.1},
                metrics={"loss": loss, "epoch_time_s": [40.0 / w]},
                created_at=t0 + i * 60,
                duration_s=40.0 / w,
                batches=300,
            )
        ids["xss"] = add_run(
            st,
            XSS,
            params={XSS: XSS},
            tags={XSS: XSS, "note": XSS},
            metrics={XSS: [1.0, 2.0, 3.0]},
            created_at=t0 + 600,
        )
        ids["bench"] = add_run(
            st,
            "bench-sleep",
            params={"workload": "sleep"},
            tags={"kind": "bench"},
            created_at=t0 + 700,
        )
        ch = Changes(heartbeat=t0 + 700)
        for w in (1, 2, 4, 8):
            for mode, eff in (("threads", 0.95), ("processes", 0.8)):
                ch.points.append(
                    ("metric", f"stoker.{mode}.q8.batches_per_s", w, t0, 100 * w * eff)
                )
        st.write(ids["bench"], ch)
    return ids


def many_runs(path: Path, count: int) -> None:
    """``count`` runs with three params and two metrics each, in few transactions."""
    with Store.open(path, create=True) as st:
        t0 = time.time() - count
        first = st.create_run(
            name="run-0", created_at=t0, heartbeat_at=t0, host="elsewhere", pid=1
        )
        with st._transaction() as db:  # portable SQL: SQLite and PostgreSQL
            _bulk(db, first, count, t0)


def _bulk(db: Any, first: int, count: int, t0: float) -> None:
    db.executemany(
        "INSERT INTO runs (id, name, status, created_at, ended_at, heartbeat_at,"
        " host, pid) VALUES (?, ?, 'finished', ?, ?, ?, 'elsewhere', 1)",
        [
            (first + i, f"run-{i}", t0 + i, t0 + i + 5, t0 + i + 5)
            for i in range(1, count)
        ],
    )
    db.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (first,))
    ids = range(first, first + count)
    db.executemany(
        "INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)",
        [
            (i, k, json.dumps(v))
            for i in ids
            for k, v in (("workers", i % 8), ("mode", "threads"), ("lr", 0.01))
        ],
    )
    db.executemany(
        "INSERT INTO series (id, run_id, kind, key) VALUES (?, ?, 'metric', ?)",
        [
            (2 * (i - first) + j + 1, i, k)
            for i in ids
            for j, k in enumerate(("loss", "acc"))
        ],
    )
    db.executemany(
        "INSERT INTO points (series_id, step, time, value) VALUES (?, ?, ?, ?)",
        [
            (s, step, t0, 1.0 / (step + 1))
            for s in range(1, 2 * count + 1)
            for step in range(3)
        ],
    )


def big_series(path: Path, points: int) -> int:
    """One run whose metric 'loss' has ``points`` points and one spike; returns id."""
    with Store.open(path, create=True) as st:
        run_id = add_run(st, "big", metrics={})
        ch = Changes(heartbeat=time.time())
        t = time.time()
        ch.points = [
            ("metric", "loss", i, t, 1.0 + 0.001 * (i % 100)) for i in range(points)
        ]
        ch.points[points // 3] = ("metric", "loss", points // 3, t, 50.0)  # spike
        ch.points[2 * points // 3] = ("metric", "loss", 2 * points // 3, t, -7.0)
        st.write(run_id, ch)
    return run_id
