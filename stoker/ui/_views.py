"""What each page shows, as plain data: one builder per page, shared by the server
and the static export.

The rule: a builder reads the store only through ``stoker.track``'s read API and
returns a dict of plain values (JSON-safe after ``jsonable``) that a template renders
and that the page's script draws from. Why: the same data then feeds the HTML, the
JSON API and the exported site, so the three cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import stoker.track.api as T

# The most runs one compare page overlays: each adds a series to every chart.
MAX_COMPARE = 50
# Params and metrics a runs-table row shows (the run page shows all of them).
ROW_PARAMS = 4
ROW_METRICS = 3
# The size of recorded diff a run page shows inline; the rest is cut with a note.
MAX_DIFF_CHARS = 200_000


def runs_view(query: T.RunQuery, store: Any) -> dict[str, Any]:
    """The runs table: one page, with the columns each row shows."""
    page = T.runs_page(query, store)
    keys = _key_params(page["runs"])
    for r in page["runs"]:
        r["param_items"] = [
            (k, _short(r["params"][k])) for k in keys if k in r["params"]
        ][:ROW_PARAMS]
        r["metric_items"] = [
            (k, _fmt(v)) for k, v in list(r["metrics"].items())[:ROW_METRICS]
        ]
        r["note"] = r["tags"].pop(T.NOTE_TAG, "")
    return page


def _key_params(runs: list[dict[str, Any]]) -> list[str]:
    """Param names, those whose values differ between these runs first: what sets
    one run apart is what a reader of the table looks for."""
    values: dict[str, set[str]] = {}
    for r in runs:
        for k, v in r["params"].items():
            values.setdefault(k, set()).add(json.dumps(T.jsonable(v), sort_keys=True))
    missing = {k for k in values if any(k not in r["params"] for r in runs)}
    return sorted(values, key=lambda k: (len(values[k]) == 1 and k not in missing, k))


def run_view(run_id: int, store: Any) -> dict[str, Any]:
    """One run: its facts (:func:`stoker.track.run_detail`) and its charts' data."""
    run = T.run_detail(run_id, store)
    if run["git_diff"] and len(run["git_diff"]) > MAX_DIFF_CHARS:
        cut = len(run["git_diff"]) - MAX_DIFF_CHARS
        run["git_diff"] = run["git_diff"][:MAX_DIFF_CHARS] + f"\n... {cut} more chars"
    env = dict(run.get("environment") or {})
    run["packages"] = sorted((env.pop("packages", None) or {}).items())
    run["environment_text"] = json.dumps(T.jsonable(env), indent=1, sort_keys=True)
    run["command_text"] = " ".join(run["command"] or [])
    run["param_items"] = [(k, _short(v, 200)) for k, v in run["params"].items()]
    rerun_of = run["tags"].get("rerun_of")
    run["rerun_of"] = int(rerun_of) if rerun_of and rerun_of.isdigit() else None
    return {"run": run, "charts": T.run_charts(run_id, store)}


def compare_view(run_ids: Sequence[int], store: Any) -> dict[str, Any]:
    """Several runs: their params side by side and what the charts overlay."""
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise ValueError(
            f"compare needs 2 to {MAX_COMPARE} different runs; got {len(ids)}. "
            "Tick runs in the runs table, then press Compare."
        )
    runs = [T.run_detail(i, store) for i in ids]
    keys = sorted({k for r in runs for k in r["params"]})
    rows = []
    for k in keys:
        values = [json.dumps(r["params"].get(k, None), sort_keys=True) for r in runs]
        missing = any(k not in r["params"] for r in runs)
        rows.append(
            {
                "key": k,
                "values": [_short(r["params"].get(k, "")) for r in runs],
                "differs": missing or len(set(values)) > 1,
            }
        )
    metric_keys = sorted({k for r in runs for k in r["metric_keys"]})
    data = {
        "runs": [
            {
                "id": r["id"],
                "name": r["name"],
                "status": r["status"],
                "params": r["params"],
                "duration_s": r["duration_s"],
                "metrics": r["metrics"],
                "throughput_bps": _throughput(r),
                "epoch_time_s": _epoch_time(r),
            }
            for r in runs
        ],
        "metrics": {
            k: [
                T.series(r["id"], k, store=store) if k in r["metric_keys"] else None
                for r in runs
            ]
            for k in metric_keys
        },
        "param_keys": keys,
        "differing": [row["key"] for row in rows if row["differs"]],
    }
    return {"runs": runs, "param_rows": rows, "data": data}


def bench_view(store: Any) -> dict[str, Any]:
    """Every recorded ``stoker bench`` sweep (runs tagged ``kind=bench``)."""
    page = T.runs_page(T.RunQuery(tag=("kind", "bench"), per_page=100), store)
    sweeps = []
    for r in page["runs"]:
        detail = T.run_detail(r["id"], store)
        curves = {
            k: T.series(r["id"], k, store=store)
            for k in detail["metric_keys"]
            if k.endswith("batches_per_s")
        }
        steps = sorted({s for c in curves.values() for s in c["step"]})
        table = [[step, *[_at(c, step) for c in curves.values()]] for step in steps]
        sweeps.append(
            {
                "run": r,
                "params": [(k, _short(v)) for k, v in detail["params"].items()],
                "curves": curves,
                "columns": [k.removesuffix(".batches_per_s") for k in curves],
                "table": table,
            }
        )
    return {"sweeps": sweeps, "total": page["total"]}


def _at(curve: dict[str, Any], step: int) -> str:
    try:
        return _fmt(curve["last"][curve["step"].index(step)])
    except ValueError:
        return ""


def _throughput(run: dict[str, Any]) -> float | None:
    rates: list[float] = []
    for ld in run["loaders"]:
        value = (ld["summary"] or {}).get("throughput_bps")
        if isinstance(value, (int, float)):
            rates.append(float(value))
    return sum(rates) if rates else None


def _epoch_time(run: dict[str, Any]) -> float | None:
    """The first loader's mean epoch time: its elapsed time over its epochs."""
    for ld in run["loaders"]:
        s = ld["summary"] or {}
        elapsed, epochs = s.get("elapsed_s"), s.get("epochs")
        if isinstance(elapsed, (int, float)) and isinstance(epochs, int) and epochs:
            return float(elapsed) / epochs
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(T.jsonable(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "NaN" if value is None else str(value)
