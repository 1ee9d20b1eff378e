"""A sweep's table and chart, from the store: the write-up's spreadsheet and figure.

Rule: one row per combination of the grid, over its finished trials: the median
time (the tracked run's duration; a trial that tracked no run counts its wall time),
its min and max, and a metric's median when one is asked for. When the grid has a
``workers`` param, ``speedup`` is each row's time against the row with the fewest
workers and the same other params, and the chart draws the ideal (time divided by
the worker ratio) as a dotted line. Medians, because one slow trial on a busy
machine should not move the answer.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import stoker.track.api as T
from stoker import StoreError
from stoker.sweep._grid import render

StorePath = str | None


def _x_param(grid: dict[str, list[Any]], x: str | None) -> str:
    if x is not None:
        return x
    if "workers" in grid:
        return "workers"
    numeric = [
        k for k, vs in grid.items() if all(isinstance(v, (int, float)) for v in vs)
    ]
    return numeric[0] if numeric else next(iter(grid))


def sweep_rows(
    name: str, store: StorePath = None, *, metric: str | None = None
) -> dict[str, Any]:
    """The sweep's table: ``grid``, ``status``, ``rows`` (one per combination).

    Each row: the params, ``trials``, ``finished``, ``failed``, ``time_s`` (median),
    ``time_min_s``, ``time_max_s``, ``speedup`` (with a ``workers`` param), the
    metric's median as ``metric`` (when ``metric`` is given) and ``errors``.

    Raises:
        StoreError: no such sweep.
    """
    sweep = T.get_sweep(name, store)
    grid: dict[str, list[Any]] = sweep["grid"]
    runs: dict[int, dict[str, Any]] = {}
    for t in sweep["trials"]:
        if t["run_id"] is not None and t["status"] == "finished":
            # A run deleted since: the trial's wall time stands.
            with contextlib.suppress(StoreError):
                runs[t["run_id"]] = T.get_run(t["run_id"], store)
    by_combo: dict[str, list[dict[str, Any]]] = {}
    for t in sweep["trials"]:
        combo = ",".join(f"{k}={render(t['params'].get(k))}" for k in grid)
        by_combo.setdefault(combo, []).append(t)
    rows = []
    for combo_trials in by_combo.values():
        params = combo_trials[0]["params"]
        times, values, errors = [], [], []
        for t in combo_trials:
            if t["status"] == "finished":
                run = runs.get(t["run_id"])
                wall = (t["ended_at"] or 0) - (t["started_at"] or 0)
                times.append(run["duration_s"] if run else wall)
                if metric and run and metric in run["metrics"]:
                    values.append(run["metrics"][metric]["last"])
            elif t["error"]:
                errors.append(t["error"])
        row: dict[str, Any] = {k: params.get(k) for k in grid}
        row.update(
            trials=len(combo_trials),
            finished=len(times),
            failed=sum(t["status"] == "failed" for t in combo_trials),
            time_s=statistics.median(times) if times else None,
            time_min_s=min(times) if times else None,
            time_max_s=max(times) if times else None,
            errors=errors,
        )
        if metric:
            row["metric"] = statistics.median(values) if values else None
        rows.append(row)
    if "workers" in grid:
        _speedups(rows, [k for k in grid if k != "workers"])
    return {"name": name, "status": sweep["status"], "grid": grid, "rows": rows}


def _speedups(rows: list[dict[str, Any]], others: Sequence[str]) -> None:
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        lines.setdefault(repr([r[k] for k in others]), []).append(r)
    for line in lines.values():
        timed = [
            r for r in line if r["time_s"] and isinstance(r["workers"], (int, float))
        ]
        base = min(timed, key=lambda r: r["workers"], default=None)
        for r in line:
            ok = base is not None and r in timed
            r["speedup"] = base["time_s"] / r["time_s"] if ok and base else None


def draw(
    table: dict[str, Any],
    path: str | Path,
    *,
    x: str | None = None,
    metric: str | None = None,
) -> Path:
    """The sweep's chart as a PNG: y = time (or the metric) by x, a line per rest.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    from stoker.bench.chart import _pyplot

    plt = _pyplot()
    grid = table["grid"]
    xp = _x_param(grid, x)
    others = [k for k in grid if k != xp]
    ykey = "metric" if metric else "time_s"
    lines: dict[str, list[dict[str, Any]]] = {}
    for r in table["rows"]:
        if r.get(ykey) is not None:
            label = ", ".join(f"{k}={render(r[k])}" for k in others) or "time"
            lines.setdefault(label, []).append(r)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for i, (label, points) in enumerate(sorted(lines.items())):
            points.sort(key=lambda r: (isinstance(r[xp], str), r[xp]))
            xs = [r[xp] for r in points]
            ys = [r[ykey] for r in points]
            color = f"C{i}"
            ax.plot(xs, ys, marker="o", color=color, label=label)
            if ykey == "time_s":
                lo = [r[ykey] - r["time_min_s"] for r in points]
                hi = [r["time_max_s"] - r[ykey] for r in points]
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", color=color, capsize=3)
            if xp == "workers" and ykey == "time_s" and isinstance(xs[0], (int, float)):
                ideal = [ys[0] * xs[0] / w for w in xs]
                ax.plot(xs, ideal, linestyle=":", color=color, label=f"{label} ideal")
        if xp == "workers":
            from matplotlib.ticker import ScalarFormatter

            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            xs_all = sorted({r[xp] for pts in lines.values() for r in pts})
            ax.set_xticks(xs_all)
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel(xp)
        ax.set_ylabel(metric or "time (s, median)")
        ax.set_title(f"sweep {table['name']}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
