"""``stoker runs show``: everything recorded about one run, as text or JSON.

Thin, like the rest of ``stoker runs`` (its helpers are in ``runs.py``): it calls
``stoker.track.get_run`` and prints the run, its params, metrics and loaders.

A loader that tuned itself (``workers="auto"``, ...) gets a "tuning" table: one
line per decision of its last reported summary (at batch, after how many seconds,
the setting, from -> to, and why). The settings line shows an "auto" setting as
``auto`` with the value in force at the end (``auto: 8``), since the value recorded
at the start is only where the controller began.
"""

from __future__ import annotations

import shlex
from typing import Any

import click

from stoker.cli._params import json_option, store_option
from stoker.cli.runs import (
    _call,
    _console,
    _duration,
    _json,
    _num,
    _print_json,
    _status,
    _store,
    _table,
    _when,
)


@click.command()
@click.argument("run_id", type=int)
@store_option
@json_option
@click.pass_context
def show(ctx: click.Context, run_id: int, store: str | None, as_json: bool) -> None:
    """Everything recorded about one run."""
    from stoker.track import get_run

    run = _call(get_run, run_id, _store(ctx, store))
    if _json(ctx, as_json):
        _print_json(run)
        return
    _print_run(_console(), run)


def _print_run(console: Any, run: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"[bold]run {run['id']}[/]  {run['name']}  {_status(run['status'])}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    end = _when(run["ended_at"]) if run["ended_at"] else "-"
    grid.add_row("started", f"{_when(run['created_at'])}  ended {end}")
    grid.add_row("duration", _duration(run["duration_s"]))
    if "heartbeat_age_s" in run:
        grid.add_row("heartbeat", f"{run['heartbeat_age_s']:.1f} s ago")
    grid.add_row("command", shlex.join(run["command"] or []))
    grid.add_row("cwd", run["cwd"] or "-")
    git = run["git_note"] or "-"
    if run["git_commit"]:
        git = f"{run['git_commit'][:12]} ({run['git_branch'] or 'detached'})"
        if run["git_dirty"]:
            git += f", uncommitted diff of {run['git_diff_bytes'] or 0:,} bytes"
        if run["git_note"]:
            git += f"; {run['git_note']}"
    grid.add_row("git", git)
    env = run["environment"]
    machine = f"{run['host']}, pid {run['pid']}"
    if env:
        memory = env.get("memory_bytes")
        machine += f", {env.get('cpu_count')} CPUs"
        machine += f", {memory / 2**30:.1f} GiB" if memory else ""
        pkgs = env.get("packages", {})
        machine += f"; Python {env.get('python')}, {len(pkgs)} packages"
    grid.add_row("host", machine)
    console.print(grid)
    for title, values in (("params", run["params"]), ("tags", run["tags"])):
        if values:
            table = _table(title[:-1], "value", title=title)
            for key, value in values.items():
                table.add_row(key, _num(value))
            console.print(table)
    if run["metrics"]:
        table = _table(
            "metric", "last", "step", "min", "max", "points", title="metrics"
        )
        for key, m in run["metrics"].items():
            points = str(m["count"]) + (
                f" ({m['nan_count']} nan)" if m["nan_count"] else ""
            )
            table.add_row(
                key,
                _num(m["last"]),
                str(m["step"]),
                _num(m["min"]),
                _num(m["max"]),
                points,
            )
        console.print(table)
    _print_loaders(console, run["loaders"])
    system = run["system"]
    if system:
        parts = [
            f"{key} mean {_num(system[key]['mean'])} max {_num(system[key]['max'])}"
            for key in (
                "cpu_percent",
                "rss_mb",
                "children_cpu_percent",
                "children_rss_mb",
            )
            if key in system
        ]
        console.print("[bold]process[/]  " + "; ".join(parts))
    if run["error"]:
        console.print("[bold red]error[/]")
        console.print(run["error"].rstrip(), markup=False)


def _ms(seconds: Any) -> str:
    return f"{seconds * 1000:.2f} ms" if isinstance(seconds, (int, float)) else "-"


def _in_force(st: dict[str, Any], su: dict[str, Any], key: str, end: str) -> str:
    """A setting as recorded at the start, or for an "auto" one where it ended."""
    if key not in (st.get("auto") or []):
        return _num(st.get(key))
    value = su.get(end)
    return "auto" if value is None else f"auto: {_num(value)}"


def _print_loaders(console: Any, loaders: list[dict[str, Any]]) -> None:
    for ld in loaders:
        st, su = ld["settings"], ld["summary"] or {}
        mode = st.get("mode") or ("process" if st.get("use_multiprocessing") else "-")
        if "use_multiprocessing" in (st.get("auto") or []):
            mode = _in_force(st, su, "use_multiprocessing", "mode")
        setting = [f"{mode}, {_in_force(st, su, 'workers', 'workers')} workers"]
        setting.append(f"queue {_in_force(st, su, 'max_queue_size', 'max_queue_size')}")
        setting.append(f"seed {_num(st.get('seed'))}")
        if st.get("start_method"):
            setting.append(f"start method {st['start_method']}")
        console.print(f"[bold]loader {ld['loader_key']}[/]  " + ", ".join(setting))
        wait = su.get("wait_fraction")
        stats = [
            f"{ld['batches_recorded']} batches recorded"
            f" ({ld['epochs_recorded']} epochs ended)",
            f"{_num(su.get('throughput_bps'))} batch/s",
            f"waited {wait:.0%} of the time" if isinstance(wait, float) else "",
            f"first batch {_ms(su.get('time_to_first_batch_s'))}",
            f"mean wait {_ms(ld['mean_wait_s'])} (max {_ms(ld['max_wait_s'])})",
            f"mean produce {_ms(ld['mean_produce_s'])}",
            f"mean queue depth {_num(ld['mean_queue_depth'])}",
        ]
        console.print("  " + ", ".join(x for x in stats if x), markup=False)
        if su:
            verdict = f"  verdict: {su.get('verdict', '-')}"
            if su.get("advice"):
                verdict += f": {su['advice']}"
            console.print(verdict, markup=False)
        if su.get("tuning"):
            console.print(_tuning_table(su["tuning"]))


def _tuning_table(decisions: list[dict[str, Any]]) -> Any:
    """The decisions, oldest first; every cell is rich ``Text``, never markup: the
    ``why`` is the engine's sentence, and values are data."""
    from rich.text import Text

    table = _table("at batch", "at", "setting", "from → to", "why", title="  tuning")
    for d in decisions:
        at_s = d.get("at_s")
        table.add_row(
            Text(_num(d.get("at_batch"))),
            Text(f"{at_s:.2f} s" if isinstance(at_s, (int, float)) else "-"),
            Text(str(d.get("setting", "-"))),
            Text(f"{_num(d.get('from'))} → {_num(d.get('to'))}"),
            Text(str(d.get("why", ""))),
        )
    return table
