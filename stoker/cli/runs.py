"""``stoker runs``: list, show, compare, export, re-run and delete tracked runs;
send spools (``sync``) and copy runs between stores (``push``, ``pull``).

Thin: each command parses its options, calls one function of :mod:`stoker.track`
and prints a rich table, or JSON with ``--json``. A store problem exits with status 1
and the store's message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from stoker.cli._params import json_option, store_option

_STATUSES = ("running", "finished", "failed", "killed")
_STATUS_STYLE = {
    "running": "cyan",
    "finished": "green",
    "failed": "red",
    "killed": "magenta",
}
_SINCE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from stoker._errors import StoreError

    try:
        return fn(*args, **kwargs)
    except StoreError as e:
        raise click.ClickException(str(e)) from None


def _print_json(obj: Any) -> None:
    from stoker.track.api import jsonable

    click.echo(json.dumps(jsonable(obj), indent=2, allow_nan=False))


# Piped into a file or another program: lines as long as their content, never
# folded mid-word at rich's default of 80 columns (--json is the machine format).
_PIPED_WIDTH = 100_000


def _console() -> Any:
    """The terminal's width on a terminal; unbounded lines when piped."""
    import os

    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPED_WIDTH)
    return console


def _table(*columns: str, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    return table


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(s), 60)
    return f"{m}m {s:02d}s" if m < 60 else f"{m // 60}h {m % 60:02d}m"


def _num(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.6g}"
    if x is None:
        return "-"
    return x if isinstance(x, str) else json.dumps(x)


def _status(s: str) -> str:
    return f"[{_STATUS_STYLE.get(s, 'white')}]{s}[/]"


def _pairs(values: tuple[str, ...], what: str) -> dict[str, Any]:
    out = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint=what)
        try:
            out[key] = json.loads(raw) if what == "--param" else raw
        except ValueError:
            out[key] = raw
    return out


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([mhdw])", text.strip())
    if m:
        return time.time() - float(m.group(1)) * _SINCE_UNITS[m.group(2)]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a duration (30m, 2h, 7d, 1w) or a date (2025-11-01)",
            param_hint="--since",
        ) from None


def _store(ctx: click.Context, store: str | None) -> str | None:
    return store or (ctx.obj or {}).get("store")


def _json(ctx: click.Context, as_json: bool) -> bool:
    return as_json or bool((ctx.obj or {}).get("json"))


@click.group(invoke_without_command=True)
@store_option
@click.option("--status", multiple=True, type=click.Choice(_STATUSES))
@click.option("--name", help="A glob (mnist-*) or a part of the run's name.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE")
@click.option("--since", metavar="WHEN", help="30m, 2h, 7d, 1w or a date.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--bench", is_flag=True, help="Also list the records of stoker bench.")
@json_option
@click.pass_context
def runs(
    ctx: click.Context,
    store: str | None,
    status: tuple[str, ...],
    name: str | None,
    tags: tuple[str, ...],
    params: tuple[str, ...],
    since: str | None,
    limit: int,
    bench: bool,
    as_json: bool,
) -> None:
    """List tracked runs, newest first; subcommands show, compare, export, ...

    The records ``stoker bench`` makes are listed only with --bench.
    """
    ctx.obj = {"store": store, "json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    from stoker.track.api import list_runs

    rows = _call(
        list_runs,
        store,
        status=status,
        name=name,
        tags=_pairs(tags, "--tag"),
        params=_pairs(params, "--param"),
        since=_since(since),
        limit=limit,
        bench=bench,
    )
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no runs match")
        return
    table = _table("id", "name", "status", "started", "duration", "commit", "metrics")
    for r in rows:
        commit = (r["git_commit"] or "-")[:8] + ("+" if r["git_dirty"] else "")
        metrics = ", ".join(f"{k}={_num(x)}" for k, x in list(r["metrics"].items())[:3])
        table.add_row(
            str(r["id"]),
            r["name"],
            _status(r["status"]),
            _when(r["created_at"]),
            _duration(r["duration_s"]),
            commit,
            metrics,
        )
    _console().print(table)


@runs.command()
@click.argument("run_ids", type=int, nargs=-1)
@store_option
@click.option("--all", "show_all", is_flag=True, help="Also the params that agree.")
@click.option("--sweep", "sweep_name", metavar="NAME", help="A sweep's table instead.")
@click.option("--metric", help="With --sweep: also this metric's median.")
@json_option
@click.pass_context
def compare(
    ctx: click.Context,
    run_ids: tuple[int, ...],
    store: str | None,
    show_all: bool,
    sweep_name: str | None,
    metric: str | None,
    as_json: bool,
) -> None:
    """Params that differ, the data read and last metric values of runs, side by
    side; or with --sweep NAME, the sweep's table."""
    if sweep_name:
        from stoker.cli.sweep import print_table
        from stoker.sweep import sweep_rows

        table = _call(sweep_rows, sweep_name, _store(ctx, store), metric=metric)
        if _json(ctx, as_json):
            _print_json(table)
        else:
            print_table(table, metric)
        return
    if not run_ids:
        raise click.UsageError("give run ids to compare, or --sweep NAME")
    from stoker.track import compare_runs

    result = _call(compare_runs, list(run_ids), _store(ctx, store))
    if _json(ctx, as_json):
        _print_json(result)
        return
    heads = [f"{r['id']} {r['name']}" for r in result["runs"]]
    console = _console()
    differing = set(result["differing_params"])
    title = "params" if show_all else "params that differ"
    table = _table("param", *heads, title=title)
    for key, values in result["params"].items():
        if show_all or key in differing:
            mark = "[bold]" if key in differing else ""
            table.add_row(mark + key, *(_num(x) for x in values))
    if table.row_count:
        console.print(table)
    else:
        console.print("params: all equal" if result["params"] else "params: none")
    if result["differing_data"]:
        table = _table("data", *heads, title="the runs read different data")
        table.add_row(
            "data_version", *(_num(d["data_version"]) for d in result["data"])
        )
        table.add_row(
            "fingerprints",
            *(", ".join(d["fingerprints"]) or "-" for d in result["data"]),
        )
        console.print(table)
    table = _table("metric (last)", *heads, title="metrics")
    for key, values in result["metrics"].items():
        table.add_row(key, *(_num(x) for x in values))
    console.print(table)


@runs.command()
@click.argument("run_id", type=int)
@store_option
@click.option("--csv", "fmt", flag_value="csv", help="One row per metric point.")
@click.option("--json", "fmt", flag_value="json", default=True, help="[default]")
@click.option("--batches", is_flag=True, help="With --csv: loader batches instead.")
@click.option("-o", "--output", type=click.File("w"), default="-")
@click.pass_context
def export(
    ctx: click.Context,
    run_id: int,
    store: str | None,
    fmt: str,
    batches: bool,
    output: Any,
) -> None:
    """Write one run's data as JSON (everything) or CSV (metric points)."""
    from stoker.track import export_run

    _call(export_run, run_id, output, fmt, batches=batches, store=_store(ctx, store))


@runs.command()
@click.argument("run_id", type=int)
@store_option
@click.option("--repo", type=click.Path(file_okay=False), help="Take the commit here.")
@click.option("--keep", is_flag=True, help="Keep the temporary worktree.")
@click.pass_context
def rerun(
    ctx: click.Context, run_id: int, store: str | None, repo: str | None, keep: bool
) -> None:
    """Re-run a run's command at its commit with its uncommitted diff."""
    from stoker.track import rerun as do_rerun

    result = _call(do_rerun, run_id, _store(ctx, store), repo=repo, keep=keep)
    click.echo(f"ran: {shlex.join(result.argv)}  (in {result.cwd})", err=True)
    for note in result.notes:
        click.echo(f"note: the original recording says: {note}", err=True)
    new = ", ".join(map(str, result.new_run_ids)) or "no tracked run"
    click.echo(f"run {run_id} re-ran as {new}; exit code {result.returncode}")
    for new_id, diffs in result.param_differences.items():
        for key, (old, now) in diffs.items():
            click.echo(f"  run {new_id}: param {key} was {_num(old)}, now {_num(now)}")
    if result.worktree:
        click.echo(f"worktree kept at {result.worktree}")
    sys.exit(result.returncode)


@runs.command()
@click.argument("run_ids", type=int, nargs=-1, required=True)
@store_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also delete runs still running.")
@click.pass_context
def delete(
    ctx: click.Context,
    run_ids: tuple[int, ...],
    store: str | None,
    yes: bool,
    force: bool,
) -> None:
    """Delete runs and everything they recorded."""
    from stoker.track import delete_run

    ids = ", ".join(map(str, run_ids))
    if not yes:
        click.confirm(f"Delete run(s) {ids} and all their data?", abort=True)
    for run_id in run_ids:
        _call(delete_run, run_id, _store(ctx, store), force=force)
        click.echo(f"deleted run {run_id}")


# The team-store commands live in their own module; registered here so that
# `stoker runs --help` lists them.
from stoker.cli.runs_team import pull, push, sync  # noqa: E402

runs.add_command(sync)
runs.add_command(push)
runs.add_command(pull)

from stoker.cli.runs_show import show  # noqa: E402

runs.add_command(show)
