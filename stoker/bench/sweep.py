"""Running a grid of settings: one measured run, repeats, medians and spread.

:func:`measure` times one epoch of one setting. :func:`sweep` runs every setting of a
grid (stoker and the chosen peers) plus a serial baseline ``repeat`` times,
interleaved (repeat 1 of every setting, then repeat 2, ...) so that a slow minute of
the machine hurts every setting alike instead of one. A setting that cannot run
(processes not available, a peer that rejects the source) is recorded with its
message and skipped in later repeats; the sweep goes on.

``"auto"`` may stand among the worker counts, the queue sizes and the modes: stoker
then runs with that setting on ``"auto"`` as one more point of the grid, and each of
its repeats keeps where the controller ended (``Result.tuned``). The peers take fixed
numbers only, so they skip the auto points (a note says so).
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stoker import ConfigError
from stoker._tree import nbytes
from stoker.bench.monitor import Monitor
from stoker.bench.peers import PEERS
from stoker.bench.runners import (
    AUTO,
    MODES,
    STOKER_MODES,
    Availability,
    Count,
    Runner,
    SerialRunner,
    Setting,
    StokerRunner,
)
from stoker.bench.workloads import Workload, WorkloadError

BASELINE = Setting("serial", "serial", 1, 0)
# Exceptions that mean "this setting does not exist here", not "it broke".
_UNAVAILABLE = (ConfigError, NotImplementedError, ImportError)

# A warning in the notes is cut here: the first sentences say what it is about.
_NOTE_CHARS = 200

Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One measured epoch.

    Attributes:
        batches: batches delivered.
        bytes: bytes of array data delivered.
        wait_s: seconds the consumer spent waiting for the next batch.
        real_s, user_s, sys_s: as ``time`` reports them, for the whole process tree.
        peak_rss_bytes: peak resident memory of the process tree.
    """

    batches: int
    bytes: int
    wait_s: float
    real_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.real_s if self.real_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.real_s / 1e6 if self.real_s > 0 else 0.0

    @property
    def wait_fraction(self) -> float:
        return self.wait_s / self.real_s if self.real_s > 0 else 0.0


@dataclasses.dataclass
class Result:
    """Every repeat of one setting; ``status``: ``ok``, ``failed``, ``unavailable``."""

    setting: Setting
    samples: list[Sample] = dataclasses.field(default_factory=list)
    status: str = "ok"
    message: str = ""
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def median(self, name: str) -> float | None:
        """Median over repeats of a :class:`Sample` field or property."""
        if not self.samples:
            return None
        return float(statistics.median(getattr(s, name) for s in self.samples))

    @property
    def tuned(self) -> list[dict[str, Any]]:
        """For a setting with "auto" in it: where each repeat ended (one dict per
        sample: ``workers``, ``mode``, ``queue``, ``decisions``, ``tuning``)."""
        return list(self.extras.get("tuned", []))

    def median_tuned(self) -> dict[str, Any] | None:
        """The ``tuned`` dict of the repeat whose throughput is the median one (the
        lower middle for an even count): the settings that go with the row's number.
        """
        runs = self.tuned
        if not runs or len(runs) != len(self.samples):
            return None
        order = sorted(range(len(runs)), key=lambda i: self.samples[i].batches_per_s)
        return runs[order[(len(order) - 1) // 2]]


@dataclasses.dataclass
class SweepResult:
    """A finished sweep: the baseline, every setting's result, and what was missing."""

    workload: Workload
    grid: dict[str, Any]
    baseline: Result
    results: list[Result]
    peers: list[Availability]
    notes: list[str]
    started: str
    duration_s: float

    @property
    def traces(self) -> list[str]:
        """The trace files written (``sweep(trace_dir=...)``), in grid order."""
        return [r.extras["trace"] for r in self.results if "trace" in r.extras]


def measure(
    runner: Runner,
    source: Any,
    setting: Setting,
    *,
    step_s: float = 0.0,
    extras: dict[str, Any] | None = None,
) -> Sample:
    """Run one epoch of ``source`` under ``setting`` and measure it.

    Args:
        runner: the contender (``StokerRunner()``, a peer, ``SerialRunner()``).
        source: the batch source.
        setting: workers, mode and queue size.
        step_s: seconds the consumer sleeps per batch, standing in for a training
            step that releases the GIL (a GPU step does); 0 drains as fast as it can.
        extras: filled with what the runner reports besides timings.

    Returns:
        The measured sample. Exceptions from the runner or the source propagate.
    """
    extras = {} if extras is None else extras
    batches = size = 0
    wait = 0.0
    with Monitor() as monitor:
        gen = runner.iterate(source, setting, extras)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(gen)
                except StopIteration:
                    break
                wait += time.perf_counter() - t0
                batches += 1
                size += nbytes(batch)
                del batch  # let the loader reuse the batch's memory now
                if step_s:
                    time.sleep(step_s)
        finally:
            gen.close()
    usage = monitor.usage
    assert usage is not None
    return Sample(
        batches,
        size,
        wait,
        usage.real_s,
        usage.user_s,
        usage.sys_s,
        usage.peak_rss_bytes,
    )


def _is_count(value: Any) -> bool:
    if value == AUTO:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_grid(
    workers: Sequence[Count],
    modes: Sequence[str],
    queues: Sequence[Count],
    repeat: int,
    compare: Sequence[str],
    step_s: float,
) -> None:
    for name, values in (("workers", workers), ("queue", queues)):
        if not values or not all(_is_count(v) for v in values):
            raise ConfigError(
                f"{name}={list(values)!r}: expected whole numbers >= 1 or 'auto', "
                "e.g. 1,2,4,8,auto"
            )
    bad = [m for m in modes if m not in STOKER_MODES]
    if not modes or bad:
        raise ConfigError(
            f"mode={list(modes)!r}: expected some of {', '.join(STOKER_MODES)} "
            "(auto: use_multiprocessing='auto')"
        )
    bad = [c for c in compare if c not in PEERS]
    if bad:
        raise ConfigError(
            f"compare={bad!r}: expected some of {', '.join(PEERS)} (the peers stoker "
            "can run on the same source)"
        )
    if not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat={repeat!r}: expected a whole number >= 1")
    if not step_s >= 0:
        raise ConfigError(f"step={step_s!r}: expected seconds >= 0")


def sweep(
    workload: Workload,
    *,
    workers: Sequence[Count] = (1, 2, 4, 8),
    modes: Sequence[str] = MODES,
    queues: Sequence[Count] = (10,),
    repeat: int = 3,
    compare: Sequence[str] = (),
    step_s: float = 0.0,
    progress: Progress | None = None,
    trace_dir: str | Path | None = None,
) -> SweepResult:
    """Measure stoker (and the peers in ``compare``) over a grid of settings.

    Args:
        workload: from :func:`stoker.bench.make_workload`.
        workers: worker counts to try; ``"auto"`` adds stoker's ``workers="auto"``.
        modes: ``"thread"``, ``"process"``, ``"auto"`` (stoker's
            ``use_multiprocessing="auto"``).
        queues: ``max_queue_size`` values to try, ``"auto"`` among them if wanted.
        repeat: runs per setting; the report gives medians and the spread.
        compare: peers to run on the same source (``"keras"``, ``"torch"``).
        step_s: consumer seconds per batch (see :func:`measure`).
        progress: called as ``progress(done, total, label)`` before each run.
        trace_dir: a folder (created if missing): each stoker setting writes its
            Chrome/Perfetto trace there (see :func:`stoker.bench.runners.trace_path`;
            the last repeat's is kept); ``SweepResult.traces`` lists them.

    Returns:
        Every setting's samples, the serial baseline and the notes.

    Raises:
        ConfigError: a bad grid value.
        WorkloadError: the workload itself raised (in the serial baseline, so it is
            the source's fault, not a loader's).
    """
    _check_grid(workers, modes, queues, repeat, compare, step_s)
    # "1,2,2" means 1 and 2: a repeated value would only be measured twice as often.
    workers, queues = list(dict.fromkeys(workers)), list(dict.fromkeys(queues))
    modes, compare = list(dict.fromkeys(modes)), list(dict.fromkeys(compare))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    notes: list[str] = []
    if trace_dir is not None:
        try:
            Path(trace_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"trace_dir={str(trace_dir)!r}: cannot create the folder for the "
                f"traces ({exc}); pass a writable folder"
            ) from None
    runners: dict[str, Runner] = {
        "serial": SerialRunner(),
        "stoker": StokerRunner(trace_dir),
    }
    peers: list[Availability] = []
    for name in compare:  # imported now, so every run sees the same process memory
        peer = PEERS[name]()
        status = peer.availability()
        peers.append(status)
        if status.available:
            runners[name] = peer
        else:
            notes.append(f"{name}: not run. {status.message}")
    settings: list[Setting] = []
    for loader in ["stoker", *[p.name for p in peers if p.available]]:
        loader_modes = [m for m in modes if m in runners[loader].modes]
        if not loader_modes:
            loader_modes = list(runners[loader].modes)
            notes.append(
                f"{loader}: has no {'/'.join(modes)} workers; ran in "
                f"{'/'.join(loader_modes)} mode"
            )
        counts = (workers, queues)
        if loader != "stoker" and AUTO in [*workers, *queues]:
            counts = (
                [w for w in workers if w != AUTO],
                [q for q in queues if q != AUTO],
            )
            notes.append(
                f"{loader}: takes fixed numbers; the 'auto' points are stoker's"
            )
        settings += [
            Setting(loader, m, w, q)
            for m in loader_modes
            for q in counts[1]
            for w in counts[0]
        ]
    baseline = Result(BASELINE)
    results = {s: Result(s) for s in settings}
    total = repeat * (1 + len(settings))
    done = 0
    for _ in range(repeat):
        for setting in [BASELINE, *settings]:
            result = baseline if setting is BASELINE else results[setting]
            if progress is not None:
                progress(done, total, setting.label)
            done += 1
            if result.status != "ok":
                continue
            _run_one(runners[setting.loader], workload, result, step_s, notes)
    if progress is not None:
        progress(total, total, "done")
    return SweepResult(
        workload=workload,
        grid={
            "workers": list(workers),
            "modes": list(modes),
            "queues": list(queues),
            "repeat": repeat,
            "compare": list(compare),
            "step_s": step_s,
        },
        baseline=baseline,
        results=list(results.values()),
        peers=peers,
        notes=notes,
        started=started,
        duration_s=time.perf_counter() - t_start,
    )


def _run_one(
    runner: Runner, workload: Workload, result: Result, step_s: float, notes: list[str]
) -> None:
    setting = result.setting
    extras: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sample = measure(
                runner, workload.source, setting, step_s=step_s, extras=extras
            )
        except Exception as exc:
            if setting is BASELINE:
                where = f"source[{extras['index']}]" if "index" in extras else "it"
                raise WorkloadError(
                    f"workload {workload.name}: {where} raised "
                    f"{type(exc).__name__}: {exc} (in a plain loop, without any "
                    "loader: the source itself fails)"
                ) from exc
            result.status = "unavailable" if isinstance(exc, _UNAVAILABLE) else "failed"
            result.message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return
    for w in caught:
        text = str(w.message)
        text = text if len(text) <= _NOTE_CHARS else text[: _NOTE_CHARS - 3] + "..."
        note = f"{setting.loader}: {w.category.__name__}: {text}"
        if note not in notes:
            notes.append(note)
    result.samples.append(sample)
    if "tuned" in extras:  # one per repeat, beside its sample
        result.extras.setdefault("tuned", []).append(extras.pop("tuned"))
    result.extras.update(extras)
