"""A sweep as numbers people and programs read: a rich table, JSON and CSV.

The JSON document is a stable, versioned schema (``SCHEMA``/``SCHEMA_VERSION``): keys
are only ever added within a version; a rename or removal bumps the version. One row
per setting, serial baseline first, with the fields in ``ROW_FIELDS``; the JSON row
also carries every repeat's raw sample under ``samples``. CSV has exactly
``ROW_FIELDS`` as columns, one line per row.

A row whose setting has ``"auto"`` in it (``workers``, ``queue`` or ``mode`` is the
string ``"auto"``) also says where the controller ended, in the repeat whose
throughput is the median: ``tuned_workers``, ``tuned_mode``, ``tuned_queue`` and
``tuning_decisions`` (each JSON sample has its own under ``tuned``, with the
decisions). Fixed rows leave them empty. Its efficiency divides by
``tuned_workers``: the pool auto ended with.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import stoker
from stoker.bench.runners import AUTO
from stoker.bench.sweep import Result, SweepResult

SCHEMA = "stoker.bench"
SCHEMA_VERSION = 1
ROW_FIELDS = (
    "loader",
    "mode",
    "workers",
    "queue",
    "status",
    "message",
    "repeats",
    "batches",
    "batches_per_s",
    "batches_per_s_min",
    "batches_per_s_max",
    "spread",
    "mb_per_s",
    "speedup",
    "efficiency",
    "wait_fraction",
    "real_s",
    "user_s",
    "sys_s",
    "peak_rss_mb",
    "verdict",
    "tuned_workers",
    "tuned_mode",
    "tuned_queue",
    "tuning_decisions",
)
TOP_FIELDS = (
    "schema",
    "version",
    "stoker_version",
    "command",
    "started",
    "duration_s",
    "machine",
    "workload",
    "grid",
    "peers",
    "notes",
    "results",
)


def _row(result: Result, baseline_bps: float | None) -> dict[str, Any]:
    s = result.setting
    bps = [x.batches_per_s for x in result.samples]
    median = result.median("batches_per_s")
    speedup = median / baseline_bps if median is not None and baseline_bps else None
    rss = result.median("peak_rss_bytes")
    batches = result.median("batches")
    end = result.median_tuned() or {}
    pool = s.workers if isinstance(s.workers, int) else end.get("workers")
    return {
        "loader": s.loader,
        "mode": s.mode,
        "workers": s.workers,
        "queue": s.queue,
        "status": result.status,
        "message": result.message,
        "repeats": len(result.samples),
        "batches": int(batches) if batches is not None else None,
        "batches_per_s": median,
        "batches_per_s_min": min(bps) if bps else None,
        "batches_per_s_max": max(bps) if bps else None,
        "spread": (max(bps) - min(bps)) / median if bps and median else None,
        "mb_per_s": result.median("mb_per_s"),
        "speedup": speedup,
        "efficiency": speedup / pool if speedup is not None and pool else None,
        "wait_fraction": result.median("wait_fraction"),
        "real_s": result.median("real_s"),
        "user_s": result.median("user_s"),
        "sys_s": result.median("sys_s"),
        "peak_rss_mb": rss / 1e6 if rss is not None else None,
        "verdict": result.extras.get("verdict"),
        "tuned_workers": end.get("workers"),
        "tuned_mode": end.get("mode"),
        "tuned_queue": end.get("queue"),
        "tuning_decisions": end.get("decisions"),
    }


def rows(result: SweepResult) -> list[dict[str, Any]]:
    """One dict per setting (keys ``ROW_FIELDS``), the serial baseline first."""
    base = result.baseline.median("batches_per_s")
    return [_row(r, base) for r in [result.baseline, *result.results]]


def machine() -> dict[str, Any]:
    """What the numbers depend on: cores, Python, numpy, platform."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def to_dict(result: SweepResult, command: str | None = None) -> dict[str, Any]:
    """The whole sweep as the versioned JSON document (keys ``TOP_FIELDS``)."""
    table = rows(result)
    for row, res in zip(table, [result.baseline, *result.results], strict=True):
        row["samples"] = [
            {
                "batches": x.batches,
                "bytes": x.bytes,
                "wait_s": x.wait_s,
                "real_s": x.real_s,
                "user_s": x.user_s,
                "sys_s": x.sys_s,
                "peak_rss_bytes": x.peak_rss_bytes,
                "batches_per_s": x.batches_per_s,
                **({"tuned": tuned} if tuned is not None else {}),
            }
            for x, tuned in zip(res.samples, _per_sample(res), strict=True)
        ]
        row["extras"] = {k: v for k, v in res.extras.items() if k != "tuned"}
    w = result.workload
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "stoker_version": stoker.__version__,
        "command": command,
        "started": result.started,
        "duration_s": result.duration_s,
        "machine": machine(),
        "workload": {"name": w.name, "description": w.description, "params": w.params},
        "grid": result.grid,
        "peers": [p.to_dict() for p in result.peers],
        "notes": result.notes,
        "results": table,
    }


def _per_sample(result: Result) -> list[dict[str, Any] | None]:
    tuned = result.tuned
    if len(tuned) != len(result.samples):
        return [None] * len(result.samples)
    return list(tuned)


def write_json(
    result: SweepResult, path: str | Path | TextIO, command: str | None = None
) -> Path | TextIO:
    """Write :func:`to_dict` as indented JSON to a path or an open text file."""
    text = json.dumps(to_dict(result, command), indent=2) + "\n"
    if not isinstance(path, (str, Path)):
        path.write(text)
        return path
    Path(path).write_text(text)
    return Path(path)


def write_csv(result: SweepResult, path: str | Path | TextIO) -> Path | TextIO:
    """Write :func:`rows` as CSV (``ROW_FIELDS`` as the header) to a path or an open
    text file."""
    if not isinstance(path, (str, Path)):
        _csv_rows(result, path)
        return path
    with Path(path).open("w", newline="") as f:
        _csv_rows(result, f)
    return Path(path)


def _csv_rows(result: SweepResult, f: TextIO) -> None:
    writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
    writer.writeheader()
    for row in rows(result):
        writer.writerow({k: "" if row[k] is None else row[k] for k in ROW_FIELDS})


def is_auto(row: dict[str, Any]) -> bool:
    """Whether a row of :func:`rows` let stoker choose a setting ("auto")."""
    return AUTO in (row["workers"], row["queue"], row["mode"])


def best(result: SweepResult) -> dict[str, Any] | None:
    """The fastest stoker row with fixed settings (the autotuner's answer), or None
    if none ran."""
    ok = [
        r
        for r in rows(result)
        if r["loader"] == "stoker"
        and r["status"] == "ok"
        and r["batches_per_s"]
        and not is_auto(r)
    ]
    return max(ok, key=lambda r: r["batches_per_s"]) if ok else None


def auto_lines(result: SweepResult) -> list[str]:
    """One sentence per auto row: its speed against the fastest fixed setting of the
    same sweep, and the settings it ended with."""
    top = best(result)
    lines = []
    for r in rows(result):
        if not is_auto(r) or r["status"] != "ok" or r["batches_per_s"] is None:
            continue
        line = (
            f"auto ({r['mode']} workers={r['workers']} max_queue_size={r['queue']}): "
            f"{r['batches_per_s']:,.1f} batches/s"
        )
        if top is not None:
            ratio = r["batches_per_s"] / top["batches_per_s"]
            line += f", {ratio:.0%} of the fastest fixed setting"
        if r["tuned_workers"] is not None:
            line += (
                f"; ended at {r['tuned_mode']} workers={r['tuned_workers']} "
                f"max_queue_size={r['tuned_queue']} after "
                f"{_plural(r['tuning_decisions'], 'decision')}"
            )
        lines.append(line)
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _setting(value: Any, tuned: Any) -> str:
    """A table cell: the setting, or for "auto" where it ended (``auto→8``)."""
    if value == AUTO:
        return f"auto→{tuned}" if tuned is not None else "auto"
    return str(value)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(result: SweepResult) -> Any:
    """A ``rich.table.Table`` of the medians (rich is imported here, lazily)."""
    from rich.table import Table
    from rich.text import Text

    w = result.workload
    t = Table(
        # Text, not a markup string: a user's description may hold [brackets].
        title=Text(
            f"stoker bench {w.name}: {w.description}; "
            f"{w.params.get('batches')} batches per run, median of "
            f"{result.grid['repeat']} runs"
        ),
        caption=Text(
            "speedup: vs the serial loop; eff.: speedup / workers (100% = linear); "
            "wait: share of real time the consumer waited; user/sys: CPU seconds of "
            "the whole process tree; RSS: its peak resident memory, summed over "
            "processes (pages a forked worker shares with its parent count in each)"
            + (
                "; auto→N: where stoker's controller ended (median run), tuned: "
                "its decisions"
                if any(r.setting.is_auto for r in result.results)
                else ""
            )
        ),
    )
    for name in ("loader", "mode", "W", "Q"):
        t.add_column(name)
    for name in ("batch/s", "±", "MB/s", "speedup", "eff.", "wait"):
        t.add_column(name, justify="right")
    for name in ("real s", "user s", "sys s", "RSS MB"):
        t.add_column(name, justify="right")
    table_rows = rows(result)
    auto = any(is_auto(r) for r in table_rows)
    if auto:
        t.add_column("tuned", justify="right")
    for r in table_rows:
        serial = r["loader"] == "serial"
        head = [
            r["loader"],
            _setting(r["mode"], r["tuned_mode"]),
            "-" if serial else _setting(r["workers"], r["tuned_workers"]),
            "-" if serial else _setting(r["queue"], r["tuned_queue"]),
        ]
        tail = []
        if auto:
            n = r["tuning_decisions"]
            tail = [_plural(n, "change") if n is not None else "-"]
        if r["status"] != "ok":
            t.add_row(*head, r["status"], *["-"] * 9, *tail, style="dim")
            continue
        t.add_row(
            *head,
            _fmt(r["batches_per_s"], ",.1f"),
            _fmt(r["spread"] / 2 if r["spread"] is not None else None, ".0%"),
            _fmt(r["mb_per_s"], ",.1f"),
            _fmt(r["speedup"], ".2f") + "x",
            "-" if serial else _fmt(r["efficiency"], ".0%"),
            _fmt(r["wait_fraction"], ".0%"),
            _fmt(r["real_s"], ".2f"),
            _fmt(r["user_s"], ".2f"),
            _fmt(r["sys_s"], ".2f"),
            _fmt(r["peak_rss_mb"], ",.0f"),
            *tail,
        )
    return t


def problems(result: SweepResult) -> list[str]:
    """One line per setting group that did not run, then the sweep's notes."""
    lines: list[str] = []
    for r in result.results:
        if r.status != "ok":
            line = f"{r.setting.loader} {r.setting.mode}: {r.status}: {r.message}"
            if line not in lines:
                lines.append(line)
    return lines + result.notes


def command_line() -> str | None:
    """The ``stoker bench ...`` command as typed, or None when not run from a shell."""
    if sys.argv[1:2] != ["bench"]:
        return None  # called as a library, or from a test runner
    return " ".join(["stoker", *(shlex.quote(a) for a in sys.argv[1:])])
