"""The dashboard's reads: pages of runs, downsampled series, loader timelines.

The rule: every read here goes through a **read-only** connection
(:func:`open_readonly`), so a dashboard that polls a store can never take the write
lock from a training run that is logging into it, and never migrates or repairs a
store behind the user's back. A 'running' run whose process is gone is shown as
'killed' in the result (``_query._reap``) but not written.

Why the queries look as they do:

- a page of runs is one ``LIMIT``/``OFFSET`` query plus one ``count(*)``, and the
  params, tags and last metric values of only that page's runs: a store with 10,000
  runs answers as fast as one with 50;
- a run's last metric value is one indexed lookup per series (``points_series_step``),
  never an aggregate over all its points, so a run with a million points does not
  slow the runs page;
- a series is downsampled in SQL into step buckets that keep each bucket's min, max
  and last value: a one-step spike (a data-loading stall) survives, and the global
  min and max are always among the values sent (W&B's lesson, against TensorBoard's
  reservoir sampling);
- the SQL is standard (``?`` placeholders, ``count``, ``min``, ``max``, ``sum``,
  ``CAST``, ``lower``, ``LIKE``) so a PostgreSQL store can run it unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

from stoker._errors import StoreError
from stoker.track._query import _SUMMARY_KEYS, StorePath, _one, _reap
from stoker.track._sqlite import SqliteDb, _check_identity, _connect, resolve_path
from stoker.track._store import Store

# At most this many values are sent per series: each bucket sends min, max and last.
MAX_POINTS = 2000
# Runs per page of the runs table unless asked otherwise, and the most one page holds.
PER_PAGE = 50
MAX_PER_PAGE = 500
# What the runs table may be sorted by -> the SQL expression (never user text).
SORTS = {
    "id": "id",
    "name": "lower(name)",
    "status": "status",
    "started": "created_at",
    "duration": "coalesce(ended_at, heartbeat_at) - created_at",
}
STATUSES = ("running", "finished", "failed", "killed")
# The tag that holds a run's free-text note (edited on the dashboard).
NOTE_TAG = "note"


def open_readonly(store: StorePath = None) -> Store:
    """Open an existing store read-only (no lock taken, no migration, no repair).

    Raises:
        StoreError: no store there, a directory, or not a stoker store.
    """
    path = resolve_path(store)
    if isinstance(path, str):  # a postgresql:// URL: the server keeps readers apart
        return Store.open(path)
    if path.is_dir():
        raise StoreError(f"{path} is a directory; the store is a file inside it")
    if not path.exists():
        raise StoreError(
            f"no stoker store at {path}: nothing has been tracked there yet. "
            "Pass --store or set STOKER_STORE to the store's path."
        )
    with path.open("rb") as f:
        head = f.read(16)
    if head and head != b"SQLite format 3\x00":
        raise StoreError(f"{path} is not a stoker store (it is not an SQLite file)")
    # A WAL store read by a user who may not write its directory: immutable.
    mode = "ro" if os.access(path.parent, os.W_OK) else "immutable"
    conn = _connect(path, mode)
    try:
        _check_identity(conn, path)
    except Exception as e:
        conn.close()
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"{path} is damaged or not a stoker store ({e})") from e
    return Store(SqliteDb(path, conn, readonly=True))


@dataclasses.dataclass(frozen=True)
class RunQuery:
    """What the runs table shows: filters, sort and page (validated).

    Attributes:
        page: 1-based page number.
        per_page: runs per page (1 to :data:`MAX_PER_PAGE`).
        sort: a key of :data:`SORTS`.
        desc: newest / largest first.
        status: keep runs with one of these statuses.
        search: case-insensitive text in the name or commit.
        tag: ``(key, value)`` the run must have.
        param: ``(key, value)``; the value matches the JSON text or the plain string.
        ids: keep only these runs (an export's selection).
    """

    page: int = 1
    per_page: int = PER_PAGE
    sort: str = "id"
    desc: bool = True
    status: tuple[str, ...] = ()
    search: str = ""
    tag: tuple[str, str] | None = None
    param: tuple[str, str] | None = None
    ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValueError(f"page={self.page}: pages start at 1")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page={self.per_page}: use 1 to {MAX_PER_PAGE}")
        if self.sort not in SORTS:
            raise ValueError(f"sort={self.sort!r}: use one of {sorted(SORTS)}")
        bad = [s for s in self.status if s not in STATUSES]
        if bad:
            raise ValueError(f"status {bad}: use some of {list(STATUSES)}")


def _where(q: RunQuery, dead: Sequence[int] = ()) -> tuple[str, list[Any]]:
    """The WHERE clause of ``q``; ``dead``: 'running' runs whose process is gone."""
    where: list[str] = ["1 = 1"]
    args: list[Any] = []
    if q.ids:
        where.append(f"id IN ({', '.join('?' * len(q.ids))})")
        args.extend(q.ids)
    if q.status:
        # A dead 'running' run is shown killed: it counts as killed, not running.
        marks = ", ".join("?" * len(q.status))
        dead_marks = ", ".join("?" * len(dead))
        clause = f"status IN ({marks})"
        args.extend(q.status)
        if dead and "running" in q.status:
            clause = f"({clause} AND id NOT IN ({dead_marks}))"
            args.extend(dead)
        if dead and "killed" in q.status:
            clause = f"({clause} OR id IN ({dead_marks}))"
            args.extend(dead)
        where.append(clause)
    if q.search:
        where.append("(lower(name) LIKE ? OR lower(coalesce(git_commit, '')) LIKE ?)")
        like = "%" + q.search.lower().replace("%", "").replace("_", "") + "%"
        args += [like, like]
    if q.tag:
        where.append(
            "EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id "
            "AND t.key = ? AND t.value = ?)"
        )
        args += list(q.tag)
    if q.param:
        key, text = q.param
        try:
            as_json = json.dumps(json.loads(text))
        except ValueError:
            as_json = json.dumps(text)
        where.append(
            "EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id "
            "AND p.key = ? AND p.value IN (?, ?))"
        )
        args += [key, as_json, json.dumps(text)]
    return " AND ".join(where), args


def runs_page(query: RunQuery, store: StorePath = None) -> dict[str, Any]:
    """One page of the runs table.

    Returns:
        ``runs`` (summaries with ``params``, ``tags`` and last ``metrics``),
        ``total`` (runs matching the filters), ``page``, ``pages``, ``per_page``.

    Raises:
        StoreError: no store, or it cannot be read.
    """
    order = f"{SORTS[query.sort]} {'DESC' if query.desc else 'ASC'}, id DESC"
    with open_readonly(store) as st:
        dead: list[int] = []
        if query.status:
            # Few runs are 'running' at once; which are dead decides the counts.
            running = st.runs(statuses=["running"])
            _reap(st, running)
            dead = [r["id"] for r in running if r["status"] == "killed"]
        where, args = _where(query, dead)
        total = st._rows(f"SELECT count(*) AS n FROM runs WHERE {where}", args)[0]["n"]
        rows = st._rows(
            f"SELECT id FROM runs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, query.per_page, (query.page - 1) * query.per_page],
        )
        ids = [r["id"] for r in rows]
        runs = st.runs(ids=ids) if ids else []
        _reap(st, runs)
        by_id = {r["id"]: r for r in runs}
        runs = [by_id[i] for i in ids if i in by_id]
        params = st.key_values("params", ids) if ids else {}
        tags = st.key_values("tags", ids) if ids else {}
        last = last_values(st, ids, "metric")
    out = [
        {
            **{k: r[k] for k in _SUMMARY_KEYS},
            "params": params[r["id"]],
            "tags": tags[r["id"]],
            "metrics": last.get(r["id"], {}),
        }
        for r in runs
    ]
    return {
        "runs": out,
        "total": total,
        "page": query.page,
        "per_page": query.per_page,
        "pages": max(1, -(-total // query.per_page)),
    }


def last_values(
    st: Store, run_ids: Sequence[int], kind: str
) -> dict[int, dict[str, Any]]:
    """Each run's last value (at its highest step) of every series of ``kind``."""
    if not run_ids:
        return {}
    marks = ", ".join("?" * len(run_ids))
    rows = st._rows(
        "SELECT s.run_id, s.key, (SELECT q.value FROM points q "
        "WHERE q.series_id = s.id ORDER BY q.step DESC, q.time DESC LIMIT 1) AS last "
        f"FROM series s WHERE s.run_id IN ({marks}) AND s.kind = ? ORDER BY s.key",
        [*run_ids, kind],
    )
    out: dict[int, dict[str, Any]] = {i: {} for i in run_ids}
    for r in rows:
        out[r["run_id"]][r["key"]] = r["last"]
    return out


def run_detail(run_id: int, store: StorePath = None) -> dict[str, Any]:
    """A run's columns, params, tags, note, series keys, loaders and re-run links.

    Unlike :func:`stoker.track.get_run` it aggregates no points, so a run with a
    million points opens at once; the charts come from :func:`series`.

    Raises:
        StoreError: no such run, or the store cannot be read.
    """
    with open_readonly(store) as st:
        run = _one(st, run_id)
        run["params"] = st.key_values("params", [run_id])[run_id]
        run["tags"] = st.key_values("tags", [run_id])[run_id]
        keys = st._rows(
            "SELECT kind, key FROM series WHERE run_id = ? ORDER BY kind, key",
            [run_id],
        )
        run["metric_keys"] = [r["key"] for r in keys if r["kind"] == "metric"]
        run["system_keys"] = [r["key"] for r in keys if r["kind"] == "system"]
        run["metrics"] = last_values(st, [run_id], "metric")[run_id]
        run["loaders"] = st.loaders(run_id)
        run["reruns"] = [
            r["run_id"]
            for r in st._rows(
                "SELECT run_id FROM tags WHERE key = 'rerun_of' AND value = ? "
                "ORDER BY run_id",
                [str(run_id)],
            )
        ]
        diff = st.git_diff(run_id)
    run["note"] = run["tags"].pop(NOTE_TAG, "")
    run["git_diff"] = diff.decode("utf-8", "replace") if diff else None
    return run


def series(
    run_id: int,
    key: str,
    *,
    kind: str = "metric",
    max_points: int = MAX_POINTS,
    store: StorePath = None,
    st: Store | None = None,
) -> dict[str, Any]:
    """One series in step buckets of min, max and last value (``3 * buckets <=
    max_points``).

    Returns:
        ``step`` (each bucket's last step), ``min``, ``max``, ``last`` (lists of
        equal length; None where a bucket's values were all NaN), ``count`` (points
        in the series), ``nan_count``, ``global_min`` and ``global_max``.
    """
    if max_points < 3:
        raise ValueError(f"max_points={max_points}: at least 3 (min, max, last)")
    if st is None:
        with open_readonly(store) as own:
            return series(run_id, key, kind=kind, max_points=max_points, st=own)
    found = st._rows(
        "SELECT id FROM series WHERE run_id = ? AND kind = ? AND key = ?",
        [run_id, kind, key],
    )
    empty: dict[str, Any] = {"step": [], "min": [], "max": [], "last": []}
    empty.update(count=0, nan_count=0, global_min=None, global_max=None)
    if not found:
        return empty
    sid = found[0]["id"]
    # Two indexed seeks; min(step) and max(step) in one query would scan instead.
    ends = [
        st._rows(
            "SELECT step FROM points WHERE series_id = ? "
            f"ORDER BY step {order} LIMIT 1",
            [sid],
        )
        for order in ("ASC", "DESC")
    ]
    if not ends[0]:
        return empty
    lo, hi = ends[0][0]["step"], ends[1][0]["step"]
    width = max(1, -(-(hi - lo + 1) // (max_points // 3)))
    out = {**empty, "step": [], "min": [], "max": [], "last": []}
    # One indexed range query per bucket: a single GROUP BY over the series would
    # sort every point in a temporary table, about three times slower at 1e6.
    for start in range(lo, hi + 1, width):
        (b,) = st._rows(
            "SELECT max(step) AS step, min(value) AS vmin, max(value) AS vmax, "
            "count(value) AS n_values, count(*) AS n FROM points "
            "WHERE series_id = ? AND step >= ? AND step < ?",
            [sid, start, start + width],
        )
        if not b["n"]:
            continue
        (last,) = st._rows(
            "SELECT value FROM points WHERE series_id = ? AND step >= ? AND "
            "step < ? ORDER BY step DESC, time DESC LIMIT 1",
            [sid, start, start + width],
        )
        out["step"].append(b["step"])
        out["min"].append(b["vmin"])
        out["max"].append(b["vmax"])
        out["last"].append(last["value"])
        out["count"] += b["n"]
        out["nan_count"] += b["n"] - b["n_values"]
    finite_min = [v for v in out["min"] if v is not None]
    finite_max = [v for v in out["max"] if v is not None]
    out["global_min"] = min(finite_min) if finite_min else None
    out["global_max"] = max(finite_max) if finite_max else None
    return out
