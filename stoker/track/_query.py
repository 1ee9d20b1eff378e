"""The read API over a store, used by the CLI and the dashboard.

Every function opens the store (``store=None``: ``$STOKER_STORE`` or
``.stoker/store.db``), reads, and closes it; none creates a store. Results are plain
dicts and lists. Floats may be NaN or infinite: :func:`jsonable` turns them into the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` for strict JSON.

Reading is also where runs are found dead: a 'running' run whose process is gone is
marked 'killed' (see ``_liveness``), in the store when it is writable and in the
result in any case.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from stoker._errors import StoreError
from stoker.track._liveness import host, presumed_dead
from stoker.track._store import Store

StorePath = str | os.PathLike[str] | None
_SUMMARY_KEYS = (
    "id",
    "name",
    "status",
    "created_at",
    "ended_at",
    "duration_s",
    "host",
    "pid",
    "git_commit",
    "git_branch",
    "git_dirty",
)


def jsonable(obj: Any) -> Any:
    """``obj`` with non-finite floats as strings and bytes decoded, for strict JSON."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, Mapping):
        return {str(k): jsonable(x) for k, x in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(x) for x in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def _reap(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    now, here = time.time(), host()
    for r in rows:
        if r["status"] == "running" and presumed_dead(r, now, here):
            if not store.readonly:
                # If the store refuses, the run is shown as killed all the same.
                with contextlib.suppress(StoreError):
                    store.mark_killed(r["id"], r["heartbeat_at"])
            r["status"], r["ended_at"] = "killed", r["heartbeat_at"]
    for r in rows:
        end = r["ended_at"] if r["ended_at"] is not None else now
        r["duration_s"] = max(0.0, end - r["created_at"])


def _one(store: Store, run_id: int) -> dict[str, Any]:
    rows = store.runs(ids=[run_id])
    if not rows:
        raise StoreError(f"no run {run_id} in {store.path} (see `stoker runs`)")
    _reap(store, rows)
    return rows[0]


def _matches(value: Any, wanted: Any) -> bool:
    return bool(value == wanted) or str(value) == str(wanted)


def list_runs(
    store: StorePath = None,
    *,
    status: Sequence[str] = (),
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    since: float | None = None,
    limit: int | None = None,
    bench: bool = False,
) -> list[dict[str, Any]]:
    """Runs, newest first, with their params, tags and last metric values.

    ``stoker bench`` records its sweeps as runs tagged ``kind=bench``; they are not
    the user's experiments, so they are left out unless ``bench`` is True (or a
    ``tags`` filter asks for ``kind``).

    Args:
        store: the store's path.
        status: keep runs with one of these statuses.
        name: keep runs whose name matches this glob (``mnist-*``), or contains it
            (case-insensitive) when it has no wildcard.
        tags: keep runs with all these tag values.
        params: keep runs with all these param values (``0.1`` matches ``"0.1"``).
        since: keep runs created at or after this Unix time.
        limit: at most this many runs.
        bench: also list ``stoker bench``'s records.

    Raises:
        StoreError: no store, or it cannot be read.
    """
    # A 'running' run may turn out killed, so running runs are always read.
    statuses = (*status, "running") if status else ()
    filtered = bool(name or tags or params or status or not bench)
    with Store.open(store) as st:
        rows = st.runs(
            statuses=statuses, since=since, limit=None if filtered else limit
        )
        _reap(st, rows)
        if status:
            rows = [r for r in rows if r["status"] in status]
        ids = [r["id"] for r in rows]
        run_params = st.key_values("params", ids) if ids else {}
        run_tags = st.key_values("tags", ids) if ids else {}
        out = []
        for r in rows:
            p, t = run_params[r["id"]], run_tags[r["id"]]
            if name and not _name_matches(r["name"], name):
                continue
            if t.get("kind") == "bench" and not (bench or (tags and "kind" in tags)):
                continue
            if tags and any(k not in t or t[k] != str(x) for k, x in tags.items()):
                continue
            if params and any(
                k not in p or not _matches(p[k], x) for k, x in params.items()
            ):
                continue
            out.append({**{k: r[k] for k in _SUMMARY_KEYS}, "params": p, "tags": t})
            if limit is not None and len(out) >= limit:
                break
        last = st.series_stats([r["id"] for r in out], "metric") if out else {}
    for r in out:
        r["metrics"] = {k: s["last"] for k, s in last[r["id"]].items()}
    return out


def _name_matches(run_name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(run_name, pattern)
    return pattern.lower() in run_name.lower()


def get_run(run_id: int, store: StorePath = None) -> dict[str, Any]:
    """Everything recorded about one run, except its points and per-batch rows.

    Returns:
        The run's columns, ``params``, ``tags``, ``metrics`` and ``system`` (per key:
        last value and its step, min, max, mean, count, nan_count), ``loaders``
        (settings, last summary as the engine gave it, and aggregates of the
        recorded batches) and ``git_diff_bytes``.

    Raises:
        StoreError: no store, no such run, or the store cannot be read.
    """
    with Store.open(store) as st:
        run = _one(st, run_id)
        run["params"] = st.key_values("params", [run_id])[run_id]
        run["tags"] = st.key_values("tags", [run_id])[run_id]
        run["metrics"] = st.series_stats([run_id], "metric")[run_id]
        run["system"] = st.series_stats([run_id], "system")[run_id]
        run["loaders"] = st.loaders(run_id)
    if run["status"] == "running":
        run["heartbeat_age_s"] = max(0.0, time.time() - run["heartbeat_at"])
    return run


def git_diff(run_id: int, store: StorePath = None) -> bytes | None:
    """The uncommitted diff recorded when the run started (None if clean)."""
    with Store.open(store) as st:
        _one(st, run_id)
        return st.git_diff(run_id)


def compare_runs(run_ids: Sequence[int], store: StorePath = None) -> dict[str, Any]:
    """Params and last metric values of several runs, side by side.

    Returns:
        ``runs`` (summaries), ``params`` and ``metrics`` (key -> one value per run,
        None where a run lacks it), ``differing_params`` (keys whose values are
        not all equal), ``data`` (per run: its ``data_version`` tag and its loaders'
        data fingerprints) and ``differing_data`` (whether the runs read different
        data by either).

    Raises:
        StoreError: a run does not exist, or the store cannot be read.
    """
    if not run_ids:
        raise ValueError("compare_runs needs at least one run id")
    with Store.open(store) as st:
        runs = [_one(st, i) for i in run_ids]
        params = st.key_values("params", list(run_ids))
        stats = st.series_stats(list(run_ids), "metric")
        run_tags = st.key_values("tags", list(run_ids))
        data = [
            {
                "data_version": run_tags[i].get("data_version"),
                "fingerprints": sorted(
                    {
                        str(ld["settings"]["data_fingerprint"])
                        for ld in st.loaders(i)
                        if "data_fingerprint" in ld["settings"]
                    }
                ),
            }
            for i in run_ids
        ]
    keys = sorted({k for i in run_ids for k in params[i]})
    side = {k: [params[i].get(k) for i in run_ids] for k in keys}
    differing = [
        k
        for k in keys
        if any(k not in params[i] for i in run_ids)
        or any(json.dumps(x) != json.dumps(side[k][0]) for x in side[k])
    ]
    metric_keys = sorted({k for i in run_ids for k in stats[i]})
    return {
        "runs": [{k: r[k] for k in _SUMMARY_KEYS} for r in runs],
        "params": side,
        "differing_params": differing,
        "data": data,
        "differing_data": len({json.dumps(d, sort_keys=True) for d in data}) > 1,
        "metrics": {
            k: [stats[i][k]["last"] if k in stats[i] else None for i in run_ids]
            for k in metric_keys
        },
    }


def metric_buckets(
    run_id: int,
    key: str,
    count: int = 500,
    *,
    kind: str = "metric",
    store: StorePath = None,
) -> list[dict[str, Any]]:
    """One series downsampled to at most ``count`` step buckets with min and max.

    ``kind`` is 'metric' (what the run logged) or 'system' (CPU and memory samples).
    """
    with Store.open(store) as st:
        _one(st, run_id)
        return st.buckets(run_id, kind, key, count)


def export_run(
    run_id: int,
    out: TextIO,
    fmt: str = "json",
    *,
    batches: bool = False,
    store: StorePath = None,
) -> None:
    """Write a run's data to ``out``.

    Args:
        run_id: the run.
        out: a text stream.
        fmt: 'json' (one document: the run as :func:`get_run` gives it, its diff, every
            point, loader batch and epoch summary) or 'csv' (one row per point:
            kind, key, step, time, value; or per loader batch with ``batches``).
        batches: with 'csv', write the loader batches instead of the points.
        store: the store's path.

    Raises:
        StoreError: the run does not exist or the store cannot be read.
        ValueError: an unknown ``fmt``.
    """
    if fmt not in ("json", "csv"):
        raise ValueError(f"fmt={fmt!r}: use 'json' or 'csv'")
    run = get_run(run_id, store)
    with Store.open(store) as st:
        if fmt == "csv":
            rows = st.loader_batches(run_id) if batches else st.points(run_id)
            fields = list(rows[0]) if rows else ["kind", "key", "step", "time", "value"]
            writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return
        run["git_diff"] = st.git_diff(run_id)
        run["points"] = st.points(run_id)
        run["loader_batches"] = st.loader_batches(run_id)
        run["loader_epochs"] = st.loader_epochs(run_id)
    json.dump(jsonable(run), out, indent=1, allow_nan=False)
    out.write("\n")


def delete_run(run_id: int, store: StorePath = None, *, force: bool = False) -> None:
    """Delete a run and everything it recorded.

    Args:
        run_id: the run.
        store: the store's path.
        force: also delete a run whose process still runs (its later writes are
            then dropped).

    Raises:
        StoreError: no such run, the run is alive (without ``force``), or the store
            is read-only.
    """
    with Store.open(store) as st:
        run = _one(st, run_id)
        if run["status"] == "running" and not force:
            raise StoreError(
                f"run {run_id} is still running (pid {run['pid']} on {run['host']}); "
                "stop it first, or pass --force to delete it anyway"
            )
        if st.readonly:
            raise StoreError(f"the store {st.path} is read-only; cannot delete")
        st.delete_run(run_id)
