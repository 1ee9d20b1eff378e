# Run: .venv/bin/python benchmarks/track_postgres.py [--url postgresql://...]
#
# The team store's three targets (issue 16), each against the same measurement on
# the local SQLite store in the same run, so the ratios hold on a noisy machine:
#
# 1. run.log caller cost with a PostgreSQL store (in a loop with 0.2 ms of
#    GIL-releasing work per step, as benchmarks/track_log_cost.py does);
# 2. end to end points/s from one process: a tight burst of run.log calls, then
#    wait until the writer has stored them all;
# 3. `runs` listing with 10,000 runs in the store: list_runs (limit 50, as the CLI
#    shows, and all 10,000), median of 5.
#
# Without --url it starts a throwaway PostgreSQL 15 (tests/pg.py) with fsync ON.
#
# Last result (2026-11-29 10:11, 2 cores shared with 4 other jobs, load average 10.5;
# compare within a run):
#
#   sqlite      run.log caller cost: median 0.99 us, p99 24.55 us
#   sqlite      end to end: 255,913 points/s (300,000 points stored)
#   sqlite      the writer's transaction alone: 514,577 pts/s
#   postgresql  run.log caller cost: median 1.21 us, p99 25.75 us
#   postgresql  end to end: 108,950 points/s (300,000 points stored)
#   postgresql  the writer's transaction alone: 85,532 pts/s
#   sqlite      list 10,000 runs: limit 50 8.7 ms, all 0.58 s
#   postgresql  list 10,000 runs: limit 50 7.9 ms, all 0.70 s
#   list (limit 50): PostgreSQL / SQLite = 0.91x
#   list (all): PostgreSQL / SQLite = 1.21x
#
# Targets (issue 16): caller cost <= 5 us; >= 100,000 points/s end to end into
# PostgreSQL; listing 10,000 runs within 1.5x of SQLite.
"""Measure the PostgreSQL team store against the SQLite one."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from track_log_cost import _in_a_loop  # noqa: E402

import stoker.track as T  # noqa: E402


def log_cost(store: str | Path, steps: int) -> tuple[float, float]:
    with T.track("log-cost", store=store, capture=False) as run:
        empty = float(np.median(_in_a_loop(lambda i: None, steps)))
        ns = np.asarray(_in_a_loop(lambda i: run.log(step=i, loss=0.5), steps)) - empty
    p50, p99 = np.percentile(ns, [50, 99]) / 1000
    return float(p50), float(p99)


def end_to_end(store: str | Path, calls: int) -> tuple[float, int]:
    """Points per second logged and stored (3 points per call)."""
    with T.track("throughput", store=store, capture=False, sample=False) as run:
        run.flush()
        t0 = time.perf_counter()
        log = run.log
        for i in range(calls):
            log(step=i, loss=0.5, acc=0.9, lr=1e-3)
        run.flush(timeout=600)
        elapsed = time.perf_counter() - t0
    stored = sum(m["count"] for m in T.get_run(run.id, store)["metrics"].values())
    return 3 * calls / elapsed, stored


def writer_alone(store: str | Path, calls: int) -> float:
    """Points per second of one write transaction of ``3 * calls`` points: the
    writer thread's share alone, without the logging thread beside it."""
    from stoker.track._writer import METRIC, changes

    with T.Store.open(store, create=True) as st:
        run_id = st.create_run(
            name="w", created_at=0.0, heartbeat_at=0.0, host="bench", pid=1
        )
        items = [
            (METRIC, 1.0 + i, i, {"loss": 0.5, "acc": 0.9, "lr": 1e-3})
            for i in range(calls)
        ]
        t0 = time.perf_counter()
        st.write(run_id, changes(items, time.time()))
        return 3 * calls / (time.perf_counter() - t0)


def fill(store: str | Path, n: int) -> None:
    """``n`` finished runs, each with 2 params, a tag and 5 points of 2 metrics."""
    now = time.time()
    with T.Store.open(store, create=True) as st, st._transaction() as db:
        cols = (
            "uid",
            "name",
            "status",
            "created_at",
            "ended_at",
            "heartbeat_at",
            "host",
            "pid",
        )
        db.insert_rows(
            "runs",
            cols,
            [
                (
                    uuid.uuid4().hex,
                    f"run-{i}",
                    "finished",
                    now - n + i,
                    now - n + i + 5,
                    now - n + i + 5,
                    "bench",
                    1,
                )
                for i in range(n)
            ],
        )
        ids = [r["id"] for r in db.rows("SELECT id FROM runs ORDER BY id")]
        db.insert_rows(
            "params",
            ("run_id", "key", "value"),
            [(i, k, "0.1") for i in ids for k in ("lr", "workers")],
        )
        db.insert_rows(
            "tags", ("run_id", "key", "value"), [(i, "team", "a") for i in ids]
        )
        db.insert_rows(
            "series",
            ("run_id", "kind", "key"),
            [(i, "metric", k) for i in ids for k in ("loss", "acc")],
        )
        series = [r["id"] for r in db.rows("SELECT id FROM series ORDER BY id")]
        db.insert_rows(
            "points",
            ("series_id", "step", "time", "value"),
            [(s, step, now, 0.5) for s in series for step in range(5)],
        )
    if isinstance(store, str):
        with T.Store.open(store) as st:
            st._db.execute("ANALYZE")


def listing(store: str | Path, limit: int | None, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = T.list_runs(store, limit=limit)
        times.append(time.perf_counter() - t0)
    assert len(rows) == (limit or len(rows))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", help="a PostgreSQL database to use (its data stays)")
    ap.add_argument("--steps", type=int, default=5_000)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=10_000)
    args = ap.parse_args(argv)
    server = None
    if args.url is None:
        from tests.pg import PgServer

        server = PgServer(durable=True)
        server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
            stores: dict[str, str | Path] = {"sqlite": Path(tmp) / "store.db"}
            stores["postgresql"] = args.url or server.new_database()  # type: ignore
            lists = {}
            for kind, store in stores.items():
                Path(tmp, "list.db").unlink(missing_ok=True)
                p50, p99 = log_cost(store, args.steps)
                print(
                    f"{kind:<11} run.log caller cost: median {p50:.2f} us, p99 "
                    f"{p99:.2f} us"
                )
                rate, stored = end_to_end(store, args.calls)
                print(
                    f"{kind:<11} end to end: {rate:,.0f} points/s "
                    f"({stored:,} points stored)"
                )
                alone = writer_alone(store, args.calls)
                print(f"{kind:<11} the writer's transaction alone: {alone:,.0f} pts/s")
            list_stores = {
                "sqlite": Path(tmp) / "list.db",
                "postgresql": (args.url if args.url else server.new_database()),
            }  # type: ignore
            for kind, store in list_stores.items():
                fill(store, args.runs)
                lists[kind] = (listing(store, 50), listing(store, None, 3))
                print(
                    f"{kind:<11} list {args.runs:,} runs: limit 50 "
                    f"{lists[kind][0] * 1000:.1f} ms, all {lists[kind][1]:.2f} s"
                )
            for i, what in enumerate(("limit 50", "all")):
                ratio = lists["postgresql"][i] / lists["sqlite"][i]
                print(f"list ({what}): PostgreSQL / SQLite = {ratio:.2f}x")
    finally:
        if server is not None:
            server.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
