"""``stoker demo``: parse the options, run ``stoker.demo.run_demo``, print."""

from __future__ import annotations

from pathlib import Path

import click

from stoker.cli._params import positive_ints

_MODE_NAMES = {
    "thread": "threads",
    "threads": "threads",
    "process": "processes",
    "processes": "processes",
}


def _modes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    parts = [part.strip().lower() for part in value.split(",") if part.strip()]
    bad = [part for part in parts if part not in _MODE_NAMES]
    if bad or not parts:
        raise click.BadParameter(
            f"{value!r}: expected thread, process, or thread,process"
        )
    return tuple(dict.fromkeys(_MODE_NAMES[part] for part in parts))


@click.command()
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=None,
    help="Simulated network latency per batch, in seconds (the seed used 0.5) "
    "[default: 0.05; 0.1 with --quick, whose short epoch would otherwise leave 8 "
    "thread workers decoding images against the training step for the GIL on 2 "
    "cores].",
)
@click.option(
    "--quick",
    is_flag=True,
    help="A slice of the data and one epoch: the whole sweep in well under a minute.",
)
@click.option(
    "--workers",
    default="1,2,4,8",
    show_default=True,
    callback=positive_ints,
    help="Worker counts to compare, comma-separated.",
)
@click.option(
    "--mode",
    "modes",
    default="thread,process",
    show_default=True,
    callback=_modes,
    help="Worker kinds to compare: thread, process, or both (as stoker bench).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs per setting [default: 3; 1 with --quick].",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("stoker-data/demo-speedup.png"),
    show_default=True,
    help="Where to write the PNG chart of speedup against workers.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("stoker-data/digits"),
    show_default=True,
    help="Folder for the digit images (written on the first run, reused after).",
)
def demo(
    latency: float | None,
    quick: bool,
    workers: tuple[int, ...],
    modes: tuple[str, ...],
    epochs: int | None,
    chart: Path,
    data_dir: Path,
) -> None:
    """Train a small CNN on handwritten digits read with a simulated latency, on
    1-8 thread and process workers, and show how much stoker speeds it up."""
    from stoker.demo import DemoConfig, run_demo

    config = DemoConfig(
        latency=latency if latency is not None else (0.1 if quick else 0.05),
        quick=quick,
        workers=workers,
        modes=modes,
        epochs=epochs,
        data_dir=data_dir,
        chart=chart,
    )
    try:
        run_demo(config)
    except ImportError as exc:
        raise click.ClickException(str(exc)) from exc
