"""``stoker tune``: parse the options, run ``stoker.tune.tune``, print or ``--json``."""

from __future__ import annotations

import json

import click

_HELP = (
    "SPEC is 'module:callable', a function of no arguments that returns your source, "
    "or a built-in workload of stoker bench (latency, cpu, big, tiny, files)."
)


@click.command(epilog=_HELP)
@click.argument("spec")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="How long to run (at least two epochs).",
)
@click.option(
    "--step",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds your training step takes per batch (0: the most demanding).",
)
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    default=None,
    help="Batches per epoch [default: the whole source].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def tune(spec: str, seconds: float, step: float, batches: int | None,
         as_json: bool) -> None:  # fmt: skip
    """Find the loader settings for SPEC: a short run with every setting on auto."""
    from stoker import StokerError
    from stoker.tune import tune as run_tune

    try:
        report = run_tune(spec, seconds=seconds, step=step, batches=batches)
    except StokerError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    s = report["settings"]
    click.echo(
        f"stoker.Loader(source, workers={s['workers']}, use_multiprocessing="
        f"{s['use_multiprocessing']}, max_queue_size={s['max_queue_size']})"
    )
    click.echo(
        f"  {report['throughput_bps']:.1f} batches/s over {report['batches']} "
        f"batches in {report['epochs']} epochs; the loop waited "
        f"{report['wait_fraction']:.0%} of the time"
    )
    click.echo(f"  verdict: {report['verdict']}: {report['advice']}")
    for d in report["tuning"]:
        click.echo(
            f"  batch {d['at_batch']} ({d['at_s']:.2f} s): {d['setting']} "
            f"{d['from']} -> {d['to']}: {d['why']}"
        )
    click.echo("  (or keep the 'auto' settings: they adapt while training runs)")
