"""``stoker sweep``: run a command over a grid of params, then print the table and
draw the chart. Thin: parses, calls :func:`stoker.sweep.run_sweep`, prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from stoker.cli.runs import _call, _console, _num, _print_json, _table


def print_table(table: dict[str, Any], metric: str | None = None) -> None:
    """The sweep's table (``stoker.sweep.sweep_rows``), one row per combination."""
    grid = list(table["grid"])
    speedup = "workers" in grid
    heads = [*grid, "trials", "time (s)", "min", "max"]
    heads += ["speedup"] if speedup else []
    heads += [metric] if metric else []
    heads += ["failed"]
    out = _table(*heads, title=f"sweep {table['name']} ({table['status']})")
    for r in table["rows"]:
        cells = [_num(r[k]) for k in grid]
        cells.append(f"{r['finished']}/{r['trials']}")
        cells += [_num(r["time_s"]), _num(r["time_min_s"]), _num(r["time_max_s"])]
        if speedup:
            s = r.get("speedup")
            cells.append(f"{s:.2f}x" if s else "-")
        if metric:
            cells.append(_num(r.get("metric")))
        failed = str(r["failed"]) if r["failed"] else ""
        if r["errors"]:
            failed += f" ({r['errors'][-1][:60]})"
        cells.append(failed)
        out.add_row(*cells)
    _console().print(out)


class _Progress:
    """A rich progress bar: trials done, running and failed, with an ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task: Any = None

    def update(self, sweep: Any) -> None:
        if self.task is None:
            self.task = self.bar.add_task(
                sweep.name, total=sweep.total, completed=sweep.skipped, state=""
            )
        failed = sum(r.status == "failed" for r in sweep.results)
        state = f"running {len(sweep.running)}, failed {failed}"
        killed = sum(r.status == "killed" for r in sweep.results)
        if killed:
            state += f", killed {killed}"
        if sweep.skipped:
            state += f", {sweep.skipped} done before"
        self.bar.update(
            self.task, completed=sweep.skipped + len(sweep.results), state=state
        )


def _ray_placement(
    address: str | None,
    cpus: float | None,
    gpus: float | None,
    resources: tuple[str, ...],
) -> dict[str, Any] | None:
    """``SweepOptions.ray`` from the --ray options, or None without --ray."""
    from stoker import ConfigError

    if address is None:
        if cpus is not None or gpus is not None or resources:
            raise ConfigError("--ray-cpus, --ray-gpus and --ray-resource go with --ray")
        return None
    wanted: dict[str, float] = {}
    for pair in resources:
        key, _, value = pair.partition("=")
        try:
            wanted[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"--ray-resource {pair!r}: expected NAME=N, e.g. --ray-resource "
                "gpu_box=1"
            ) from None
    return {
        "address": address or None,
        "num_cpus": 1.0 if cpus is None else cpus,
        "num_gpus": gpus or 0.0,
        "resources": wanted,
    }


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--grid",
    "grid",
    multiple=True,
    metavar="NAME=V1,V2,...",
    help="A param and its values; repeat for more params.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs per combination (the table shows medians).",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=None,
    help="Trials at once (keep 1 when timing) [default: 1; with --ray: the "
    "cluster's CPUs / --ray-cpus].",
)
@click.option(
    "--as-args",
    is_flag=True,
    help="Also pass each param as --NAME=VALUE to the command.",
)
@click.option("--name", help="The sweep's name [default: sweep-DATE-TIME].")
@click.option(
    "--resume",
    "resume",
    metavar="SWEEP",
    help="Run what the sweep SWEEP did not finish.",
)
@click.option(
    "--store",
    default=None,
    metavar="PATH|URL",
    help="The store's path or postgresql:// URL [default: $STOKER_STORE, else "
    ".stoker/store.db].",
)
@click.option(
    "--ray",
    "ray",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[ADDRESS]",
    help="Run each trial as a Ray task: on the cluster at ADDRESS ('auto', "
    "'ray://host:10001', 'host:6379'), or with no ADDRESS on $RAY_ADDRESS, else a "
    "local Ray instance. See docs/sweep.md.",
)
@click.option(
    "--ray-cpus",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="With --ray: CPUs each trial reserves [default: 1].",
)
@click.option(
    "--ray-gpus",
    type=click.FloatRange(min=0),
    default=None,
    metavar="N",
    help="With --ray: GPUs each trial reserves [default: 0].",
)
@click.option(
    "--ray-resource",
    "ray_resources",
    multiple=True,
    metavar="NAME=N",
    help="With --ray: a custom Ray resource each trial reserves; repeatable.",
)
@click.option("--metric", help="Also tabulate (and chart) this metric's last value.")
@click.option("--x", "x", metavar="PARAM", help="The chart's x [default: workers].")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False),
    help="Where to write the chart [default: in the sweep's log folder].",
)
@click.option("--no-chart", is_flag=True, help="Do not draw the chart.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sweep(
    grid: tuple[str, ...],
    repeat: int,
    parallel: int | None,
    as_args: bool,
    name: str | None,
    resume: str | None,
    store: str | None,
    ray: str | None,
    ray_cpus: float | None,
    ray_gpus: float | None,
    ray_resources: tuple[str, ...],
    metric: str | None,
    x: str | None,
    chart: str | None,
    no_chart: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND once per combination of the grid, each trial tracked.

    Example: stoker sweep --grid workers=1,2,4,8 --grid use_multiprocessing=false,true
    -- python train.py --epochs 2
    """
    import datetime as dt

    from stoker import ConfigError
    from stoker.sweep import SweepOptions, draw, parse_grid, run_sweep, sweep_rows

    name = name or dt.datetime.now().strftime("sweep-%Y%m%d-%H%M%S")

    try:
        placement = _ray_placement(ray, ray_cpus, ray_gpus, ray_resources)
        if resume:
            if grid or command:
                raise ConfigError(
                    "--resume runs the recorded grid and command: give neither "
                    "--grid nor a command with it"
                )
            options = SweepOptions(
                grid={"_": [0]},
                command=["_"],
                parallel=parallel,
                name=resume,
                store=store,
                ray=placement,
            )
        else:
            options = SweepOptions(
                grid=parse_grid(grid),
                command=list(command),
                repeat=repeat,
                parallel=parallel,
                as_args=as_args,
                name=name,
                store=store,
                ray=placement,
            )
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    progress = _Progress()
    done: Any = None
    try:
        with progress.bar:
            done = _call(
                run_sweep, options, resume=bool(resume), on_change=progress.update
            )
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        which = resume or name
        click.echo(
            f"sweep stopped: every trial was stopped; resume with "
            f"`stoker sweep --resume {which}`",
            err=True,
        )
        sys.exit(130)
    table = _call(sweep_rows, done.name, done.store, metric=metric)
    if as_json:
        _print_json(table)
    else:
        print_table(table, metric)
    for r in done.results:
        if r.status in ("failed", "killed"):
            click.echo(f"trial {r.trial.key} {r.status}: {r.error}", err=True)
    if any(r.status == "killed" for r in done.results):
        click.echo(
            f"run the killed trials again with `stoker sweep --resume {done.name}`",
            err=True,
        )
    if not no_chart:
        path = Path(chart) if chart else done.log_dir / "chart.png"
        try:
            draw(table, path, x=x, metric=metric)
            click.echo(f"chart: {path}", err=True)
        except ConfigError as e:
            click.echo(f"no chart: {e}", err=True)
    failed = any(r.status in ("failed", "killed") for r in done.results)
    sys.exit(1 if failed else 0)
