"""The seed experiment as a function: train over a sweep of workers and modes.

For each mode (threads, processes) and each worker count, a fresh CNN (the same
initial weights every time) trains on the digits Sequence through Keras 2's
``fit_generator``, ported onto stoker. The wall time of each run, its speedup over
the mode's smallest worker count and its test accuracy make the table and the chart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import stoker
from stoker.demo import digits, report

MODES = ("threads", "processes")
# 48 batches of 32 to train on (1,536 of the 1,797 images; 261 left to test): a whole
# number of rounds for 1, 2, 4 and 8 workers. Each epoch ends with a round in which
# some workers are idle (the next epoch's batches wait for the source's
# on_epoch_end), so with 45 batches 8 workers would need 6 rounds for 5.6 rounds of
# work and the table would show that, not the loader's scaling.
_TRAIN_BATCHES = 48
# --quick: one epoch of 32 batches, so the whole demo runs fast and still shows the
# story: 32 is 4 rounds of 8 workers (with 8 batches, 8 workers did one round and
# paid their start-up for nothing, and the table showed 8 slower than 4).
_QUICK_TRAIN_BATCHES, _QUICK_TEST, _QUICK_EPOCHS = 32, 160, 1
_EPOCHS = 3
_MIN_TEST = 200  # images kept out of training, whatever the batch size


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; see ``stoker demo --help`` for each option."""

    latency: float = 0.05
    quick: bool = False
    workers: tuple[int, ...] = (1, 2, 4, 8)
    modes: tuple[str, ...] = MODES
    epochs: int | None = None  # None: 3, or 1 with quick
    batch_size: int = 32
    data_dir: Path = Path("stoker-data/digits")
    chart: Path | None = Path("stoker-data/demo-speedup.png")

    def __post_init__(self) -> None:
        if not self.workers or any(
            not isinstance(w, int) or w < 1 for w in self.workers
        ):
            raise stoker.ConfigError(
                f"workers={self.workers!r}: expected whole numbers >= 1, e.g. 1,2,4,8"
            )
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise stoker.ConfigError(
                f"modes={self.modes!r}: expected one or both of {', '.join(MODES)}"
            )
        if self.latency < 0:
            raise stoker.ConfigError(f"latency={self.latency}: expected seconds >= 0")
        if self.epochs is not None and self.epochs < 1:
            raise stoker.ConfigError(f"epochs={self.epochs}: expected >= 1")

    @property
    def n_epochs(self) -> int:
        """The epochs each run trains."""
        if self.epochs is not None:
            return self.epochs
        return _QUICK_EPOCHS if self.quick else _EPOCHS


@dataclasses.dataclass
class DemoResult:
    """The demo's measurements and where its chart went."""

    config: DemoConfig
    rows: list[report.Row]
    unavailable: dict[str, str]
    chart: Path | None


def processes_unavailable() -> str | None:
    """Why process workers cannot run in this build, or None when they can."""
    try:
        with stoker.Loader(
            [0], use_multiprocessing=True, workers=1, timeout=60
        ) as probe:
            list(probe)
    except (NotImplementedError, stoker.ConfigError) as exc:
        return str(exc).split(";")[0]
    return None


@contextlib.contextmanager
def _tracking_run(name: str, params: dict[str, Any]) -> Iterator[Any]:
    """A ``stoker.track`` run (in ``$STOKER_STORE`` or ``.stoker/store.db``) when
    tracking is part of this build, else None."""
    try:
        track = importlib.import_module("stoker.track")
    except ImportError:
        track = None
    if not callable(track):
        yield None
        return
    # No git/environment capture: it runs on a thread during the timed training
    # and would skew the timings, and the demo's code is stoker's, not the user's.
    with track(name, params=params, capture=False) as run:
        yield run


def run_demo(config: DemoConfig, console: Console | None = None) -> DemoResult:
    """Run the sweep, print a progress bar and the table, write the chart.

    Args:
        config: what to run.
        console: where to print (a new ``rich`` console by default).

    Returns:
        The rows of the table, the modes that could not run, and the chart's path.
    """
    console = console or Console()
    with console.status(f"Preparing the digits in {config.data_dir} ..."):
        items = digits.prepare_digits(config.data_dir)
    batches = _QUICK_TRAIN_BATCHES if config.quick else _TRAIN_BATCHES
    train_size = min(batches * config.batch_size, len(items) - _MIN_TEST)
    train_items, test_items = digits.split(items, train_size)
    if config.quick:
        test_items = test_items[:_QUICK_TEST]
    train = digits.DigitsBatches(train_items, config.batch_size, config.latency)
    test = (
        digits.load_images([path for path, _ in test_items]),
        digits.DigitsBatches(test_items, len(test_items), 0.0).labels,
    )
    with console.status("Loading Keras ..."):
        from stoker.demo import training
    unavailable: dict[str, str] = {}
    if "processes" in config.modes:
        reason = processes_unavailable()
        if reason:
            unavailable["processes"] = reason
    modes = [m for m in config.modes if m not in unavailable]
    console.print(
        f"{len(items)} digits in {config.data_dir}: {len(train_items)} to train on "
        f"({len(train)} batches of {config.batch_size}, {config.latency:g} s latency "
        f"each), {len(test_items)} to test; {config.n_epochs} epoch(s) per run"
    )
    with training.one_torch_thread():
        training.warm_up((test[0][: config.batch_size], test[1][: config.batch_size]))
        rows = _sweep(config, train, test, modes, console)
    title = (
        f"Keras fit_generator on stoker: digits CNN, {config.latency:g} s latency "
        f"per batch, {config.n_epochs} epoch(s)"
    )
    for mode, reason in unavailable.items():
        console.print(f"[yellow]{mode}: unavailable ({reason})[/yellow]")
    console.print(report.table(rows, unavailable, title))
    chart = None
    if config.chart is not None and rows:
        chart = report.chart(rows, config.chart, title)
        console.print(f"Chart: {chart}")
    if rows and importlib.util.find_spec("starlette") is not None:
        console.print(
            "Every run above is in the tracking store. See them in the dashboard:\n"
            "  stoker ui        (then open http://127.0.0.1:8765/)\n"
            "Runs: one row per run, with its mode, workers and time. Tick the runs "
            "and press Compare: the scaling chart puts workers on x, one line per "
            "mode, with the ideal line. Open a run for its loader panel: throughput "
            "and wait fraction over time, produce time against the training's wait, "
            "queue depth, and the verdict with its advice."
        )
    return DemoResult(config, rows, unavailable, chart)


def _sweep(
    config: DemoConfig,
    train: digits.DigitsBatches,
    test: Any,
    modes: list[str],
    console: Console,
) -> list[report.Row]:
    """Every (mode, workers) run, fewest workers first: each mode's first run is
    the baseline of its speedups."""
    from stoker.demo import training

    runs = [(mode, w) for mode in modes for w in sorted(set(config.workers))]
    steps = len(train) * config.n_epochs
    rows: list[report.Row] = []
    base: dict[str, float] = {}
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} batches"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=steps * len(runs))
        for mode, workers in runs:
            label = f"{mode} x{workers}"

            def on_batch(epoch: int, label: str = label) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"{label}, epoch {epoch + 1}/{config.n_epochs}",
                )

            params = {
                "mode": mode,
                "workers": workers,
                "latency": config.latency,
                "epochs": config.n_epochs,
                "batch_size": config.batch_size,
                "quick": config.quick,
            }
            with _tracking_run("stoker-demo", params) as run:
                result = training.train_once(
                    train,
                    test,
                    mode=mode,
                    workers=workers,
                    epochs=config.n_epochs,
                    on_batch=on_batch,
                    run=run,
                )
                speedup = base.setdefault(mode, result.wall_s) / result.wall_s
                if run is not None:
                    run.log(
                        step=config.n_epochs,
                        wall_s=result.wall_s,
                        speedup=speedup,
                        test_accuracy=result.accuracy,
                    )
            rows.append(
                report.Row(mode, workers, result.wall_s, speedup, result.accuracy)
            )
            progress.console.print(
                f"  {label:<14} {result.wall_s:7.2f} s  {speedup:5.2f}x  "
                f"test accuracy {result.accuracy:.3f}"
            )
    return rows
