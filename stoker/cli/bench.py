"""``stoker bench``: sweep loader settings on a workload, compare peers, draw the chart.

A thin layer over :mod:`stoker.bench`: parse the options, run
:func:`stoker.bench.sweep` under a progress bar, print the table, write the files.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Literal

import click

# Wide enough for every column of the table with peers' rows.
_PIPED_WIDTH = 150
Count = int | Literal["auto"]
_HELP_WORKLOAD = (
    "WORKLOAD is a built-in name (latency, cpu, big, tiny, files) or "
    "'module:callable', a function of no arguments that returns a source."
)


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _counts(
    ctx: click.Context, param: click.Parameter, value: str
) -> tuple[Count, ...]:
    """``"1,2,4,auto"`` -> ``(1, 2, 4, "auto")``: numbers >= 1, and "auto"."""
    out: list[Count] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if part.lower() == "auto":
            out.append("auto")
            continue
        try:
            number = int(part)
        except ValueError:
            number = 0
        if number < 1:
            raise click.BadParameter(
                f"{value!r}: expected whole numbers >= 1 or auto, separated by "
                "commas, e.g. 1,2,4,8,auto"
            )
        out.append(number)
    if not out:
        raise click.BadParameter(f"{value!r}: expected e.g. 1,2,4,8,auto")
    return tuple(out)


def _default_chart(workload: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", workload).strip("-")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / f"stoker-bench-{slug}-{stamp}.png"


@click.command(epilog=_HELP_WORKLOAD)
@click.argument("workload")
@click.option(
    "--workers",
    default="1,2,4,8",
    show_default=True,
    callback=_counts,
    help="Worker counts to sweep, comma-separated; 'auto' adds workers='auto' as "
    "a point of its own.",
)
@click.option(
    "--mode",
    default="thread,process",
    show_default=True,
    callback=_names,
    help="Worker kinds to sweep: thread, process, auto (use_multiprocessing='auto').",
)
@click.option(
    "--queue",
    default="10",
    show_default=True,
    callback=_counts,
    help="max_queue_size values to sweep, comma-separated; 'auto' for "
    "max_queue_size='auto'.",
)
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    default=None,
    help="Batches per run [default: per workload; a user source: all of it].",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs per setting; the table shows medians and the spread.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds per batch of the latency workload [default: 0.02].",
)
@click.option(
    "--step",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds the consumer sleeps per batch, standing in for a training step.",
)
@click.option(
    "--compare",
    default=None,
    callback=_names,
    help="Peers to run on the same source: keras, torch (comma-separated).",
)
@click.option(
    "--json",
    "fmt",
    flag_value="json",
    help="Print the results as JSON (schema stoker.bench v1) instead of the table.",
)
@click.option(
    "--csv",
    "fmt",
    flag_value="csv",
    help="Print one CSV line per setting instead of the table.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the --json or --csv results to this file and print the table.",
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the PNG chart [default: a file in this folder].",
)
@click.option("--no-chart", is_flag=True, help="Do not draw the chart.")
@click.option(
    "--trace",
    "trace_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write a Chrome/Perfetto trace of each stoker setting into this folder "
    "(thread-w4-q10.trace.json, ...; the last repeat's).",
)
@click.option(
    "--track/--no-track",
    default=True,
    show_default=True,
    help="Record the results in the tracking store (stoker.track).",
)
def bench(
    workload: str,
    workers: tuple[Count, ...],
    mode: list[str],
    queue: tuple[Count, ...],
    batches: int | None,
    repeat: int,
    latency: float | None,
    step: float,
    compare: list[str],
    fmt: str | None,
    output: str | None,
    chart_path: str | None,
    no_chart: bool,
    trace_dir: str | None,
    track: bool,
) -> None:
    """Measure stoker.Loader over a grid of settings on WORKLOAD.

    Runs a serial loop as the baseline, then every combination of --workers,
    --mode and --queue, each --repeat times, plus the --compare peers on the same
    source; prints medians (or, with --json/--csv, the results in that format),
    and writes the chart. 'auto' among --workers, --queue or --mode runs stoker
    with that setting on "auto" beside the fixed points, and shows where it ended.

    \b
    Examples:
      stoker bench latency --workers 1,2,4,8
      stoker bench latency --workers 1,2,4,8,auto --trace traces
      stoker bench cpu --mode thread,process --compare keras,torch
      stoker bench mydata:make_source --batches 100 --json -o bench.json
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from stoker import StokerError
    from stoker.bench import best, make_workload, sweep, table
    from stoker.bench.report import auto_lines, problems

    if output and fmt is None:
        raise click.UsageError("-o writes the --json or --csv results: pass one")
    printing = fmt is not None and output is None  # the results are stdout's
    out = Console(stderr=printing)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # Piped into a file or a doc: 80 columns would cut the table's numbers short.
        out = Console(width=_PIPED_WIDTH, stderr=printing)
    if chart_path and no_chart:
        raise click.UsageError("--chart and --no-chart contradict each other")
    if chart_path and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(
            "--chart needs matplotlib: pip install 'stoker[charts]'"
        )
    try:
        wl = make_workload(workload, batches=batches, latency=latency)
        err = Console(stderr=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,  # a log file wants no bar redraws
        ) as bar:
            task = bar.add_task("starting", total=None)

            def progress(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, total=total, description=label)

            result = sweep(
                wl,
                workers=workers,
                modes=mode,
                queues=queue,
                repeat=repeat,
                compare=compare,
                step_s=step,
                progress=progress,
                trace_dir=trace_dir,
            )
    except StokerError as exc:  # ConfigError, WorkloadError: one line, no traceback
        raise click.ClickException(str(exc)) from None
    if printing:
        _print_results(result, fmt)
    else:
        out.print(table(result))
    for line in problems(result):
        _say(out, f"note: {line}")
    top = best(result)
    if top is not None:
        _say(
            out,
            f"fastest stoker setting: {top['mode']} workers={top['workers']} "
            f"max_queue_size={top['queue']}: {top['batches_per_s']:,.1f} batches/s, "
            f"{top['speedup']:.2f}x the serial loop",
        )
    for line in auto_lines(result):
        _say(out, line)
    if output:
        _write_results(out, result, fmt, output)
    if not no_chart:
        _chart(out, result, chart_path, workload)
    if track:
        _track(out, result)
    if result.traces:
        _say(out, f"traces ({len(result.traces)}; open in https://ui.perfetto.dev):")
        for path in result.traces:
            _say(out, f"  {path}")


def _say(out: Any, text: str) -> None:
    # Plain text: paths and messages may hold [brackets] that rich would eat as markup.
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def _write_results(out: Any, result: Any, fmt: str | None, path: str) -> None:
    from stoker.bench import write_csv, write_json
    from stoker.bench.report import command_line

    try:
        if fmt == "json":
            _say(out, f"results: {write_json(result, path, command_line())}")
        else:
            _say(out, f"results: {write_csv(result, path)}")
    except OSError as exc:
        raise click.ClickException(f"cannot write results: {exc}") from None


def _print_results(result: Any, fmt: str | None) -> None:
    import sys

    from stoker.bench import write_csv, write_json
    from stoker.bench.report import command_line

    if fmt == "json":
        write_json(result, sys.stdout, command_line())
    else:
        write_csv(result, sys.stdout)


def _chart(out: Any, result: Any, chart_path: str | None, workload: str) -> None:
    from stoker import ConfigError
    from stoker.bench import draw_chart

    path = Path(chart_path) if chart_path else _default_chart(workload)
    try:
        _say(out, f"chart: {draw_chart(result, path)}")
    except ConfigError as exc:  # matplotlib missing and no --chart asked for it
        _say(out, f"chart: not drawn: {exc}")
    except OSError as exc:
        raise click.ClickException(f"cannot write the chart: {exc}") from None


def _track(out: Any, result: Any) -> None:
    from stoker import StokerError
    from stoker.bench import record

    try:
        run = record(result)
    except StokerError as exc:  # the results are printed and written already
        _say(out, f"tracking: not recorded: {exc}")
        return
    if run is None:
        _say(out, "tracking: not recorded (this stoker has no stoker.track)")
    else:
        _say(out, f"tracking: recorded as run {getattr(run, 'id', run)}")
