"""What one run page draws, read in one read-only connection: charts and panels.

The rule: one call returns everything a run page (or its live refresh) needs, each
series already downsampled (see ``_read.series``), and each loader's per-batch rows
folded into time buckets. A page that polls every second therefore costs a few
indexed queries, however long the run.

Why time buckets for loaders: the questions the loader panel answers are "when did
the training wait, and was the loader producing slower than the model consumed?".
Per bucket of wall time: batches delivered per second, the share of the bucket the
consumer spent waiting, the mean and worst produce time and wait, and the mean queue
depth. A stall survives as a bucket's worst wait.

A loader that tuned itself also gets its ``decisions`` (the ``tuning`` list of its
last reported summary), each placed on the timeline's clock: a decision's ``at_s``
counts from the first epoch's start, which is the first recorded batch's time less
the summary's time to first batch. Why not the batch table: ``at_batch`` counts
batches over the loader's life, and placing it would need a scan of every batch.
"""

from __future__ import annotations

from typing import Any

from stoker.track._query import StorePath, _one
from stoker.track._read import MAX_POINTS, last_values, open_readonly, series
from stoker.track._store import Store

# Time buckets per loader timeline: well under MAX_POINTS values per drawn series.
LOADER_BUCKETS = 400


def loader_timeline(
    st: Store, run_id: int, buckets: int = LOADER_BUCKETS
) -> list[dict[str, Any]]:
    """Each loader of a run: settings, summary (verdict, advice) and its timeline.

    Returns:
        Per loader: ``loader_key``, ``settings``, ``summary`` (None until the loader
        reported one), ``batches`` and ``timeline``: lists ``t`` (seconds since the
        loader started), ``throughput_bps``, ``wait_fraction``, ``produce_mean_s``,
        ``produce_max_s``, ``wait_mean_s``, ``wait_max_s``, ``queue_depth``; and
        ``decisions``: the summary's tuning decisions, each with ``t`` on the
        timeline's clock (see the module docstring).
    """
    out = []
    for ld in st.loaders(run_id):
        key = ld["loader_key"]
        base = (
            "FROM loader_batches b JOIN loaders l ON l.id = b.loader_id "
            "WHERE l.run_id = ? AND l.loader_key = ?"
        )
        (span,) = st._rows(
            f"SELECT min(b.time) AS lo, max(b.time) AS hi, count(*) AS n {base}",
            [run_id, key],
        )
        lo = ld["started_at"]
        timeline: dict[str, list[Any]] = {
            k: []
            for k in (
                "t",
                "throughput_bps",
                "wait_fraction",
                "produce_mean_s",
                "produce_max_s",
                "wait_mean_s",
                "wait_max_s",
                "queue_depth",
            )
        }
        if span["n"]:
            lo = min(span["lo"], ld["started_at"])
            # About 10 batches per bucket at least, or rates jump between 0 and 1/width.
            count = max(1, min(buckets, span["n"] // 10))
            width = max((span["hi"] - lo) / count, 1e-3)
            # CAST truncates in SQLite and rounds in PostgreSQL: either way each
            # batch lands in one bucket of about ``width`` seconds.
            rows = st._rows(
                "SELECT CAST((b.time - ?) / ? AS INTEGER) AS k, count(*) AS n, "
                "sum(b.wait_s) AS wait_sum, avg(b.wait_s) AS wait_mean, "
                "max(b.wait_s) AS wait_max, avg(b.produce_s) AS produce_mean, "
                "max(b.produce_s) AS produce_max, avg(b.queue_depth) AS depth "
                # Grouped by the output column: PostgreSQL would not see the same
                # expression with other placeholders as the one selected.
                f"{base} GROUP BY k ORDER BY k",
                [lo, width, run_id, key],
            )
            for r in rows:
                timeline["t"].append(round((r["k"] + 1) * width, 6))
                timeline["throughput_bps"].append(r["n"] / width)
                timeline["wait_fraction"].append(min(1.0, r["wait_sum"] / width))
                timeline["produce_mean_s"].append(r["produce_mean"])
                timeline["produce_max_s"].append(r["produce_max"])
                timeline["wait_mean_s"].append(r["wait_mean"])
                timeline["wait_max_s"].append(r["wait_max"])
                timeline["queue_depth"].append(r["depth"])
        summary = ld["summary"] or {}
        out.append(
            {
                "loader_key": key,
                "settings": ld["settings"],
                "summary": ld["summary"],
                "batches": span["n"],
                "timeline": timeline,
                "decisions": _decisions(summary, span["lo"], lo),
            }
        )
    return out


def _decisions(
    summary: dict[str, Any], first_batch: float | None, lo: float
) -> list[dict[str, Any]]:
    """The summary's tuning decisions, each with ``t``: seconds on the timeline."""
    tuning = summary.get("tuning")
    if not isinstance(tuning, list):
        return []
    start = 0.0  # the first epoch's start, in seconds after ``lo``
    ttfb = summary.get("time_to_first_batch_s")
    if first_batch is not None:
        start = max(
            0.0, first_batch - lo - (ttfb if isinstance(ttfb, (int, float)) else 0)
        )
    out = []
    for d in tuning:
        if not isinstance(d, dict):
            continue
        at = d.get("at_s")
        t = start + at if isinstance(at, (int, float)) else None
        out.append({**d, "t": None if t is None else round(t, 6)})
    return out


def run_charts(
    run_id: int, store: StorePath = None, *, max_points: int = MAX_POINTS
) -> dict[str, Any]:
    """A run's status, every metric and system series (downsampled) and its loaders.

    What a run page draws, and what its live refresh polls.

    Raises:
        StoreError: no such run, or the store cannot be read.
    """
    with open_readonly(store) as st:
        run = _one(st, run_id)
        keys = st._rows(
            "SELECT kind, key FROM series WHERE run_id = ? ORDER BY kind, key",
            [run_id],
        )
        charts: dict[str, dict[str, Any]] = {"metric": {}, "system": {}}
        for r in keys:
            charts[r["kind"]][r["key"]] = series(
                run_id, r["key"], kind=r["kind"], max_points=max_points, st=st
            )
        return {
            "id": run_id,
            "status": run["status"],
            "heartbeat_at": run["heartbeat_at"],
            "duration_s": run["duration_s"],
            "metrics": charts["metric"],
            "system": charts["system"],
            "last": last_values(st, [run_id], "metric")[run_id],
            "loaders": loader_timeline(st, run_id),
        }
