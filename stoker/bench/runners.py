"""How each contender iterates one epoch of a source: the common runner interface.

A runner's :meth:`Runner.iterate` is a generator over one epoch's batches that
creates its workers when it starts and releases them in its ``finally``, so the time
to start and stop workers is part of the measured run, as it is part of a real
epoch. This module has the serial baseline and stoker itself; the peers (Keras,
torch) are in :mod:`stoker.bench.peers`.

A setting's workers, queue and mode may be ``"auto"`` for stoker (the loader's own
``workers="auto"``, ``max_queue_size="auto"``, ``use_multiprocessing="auto"``): such a
run reports in its extras where the controller ended (``tuned``), because the point
of putting auto beside a sweep is to see both how fast it went and what it chose.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any, Literal

import stoker
from stoker import ConfigError

# No batch of a built-in workload takes more than a second; a minute means a hang,
# and a benchmark must end with an error rather than wait forever.
BATCH_TIMEOUT_S = 60.0
MODES = ("thread", "process")
# What a setting holds instead of a number or a mode to let stoker choose.
AUTO: Literal["auto"] = "auto"
# A worker count or queue size, or "auto".
Count = int | Literal["auto"]
# stoker's modes in a sweep: the peers' two, and use_multiprocessing="auto".
STOKER_MODES = (*MODES, AUTO)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configuration of the sweep.

    Attributes:
        loader: ``"serial"``, ``"stoker"``, ``"keras"`` or ``"torch"``.
        mode: ``"thread"`` or ``"process"`` (``"serial"`` for the baseline); for
            stoker also ``"auto"`` (``use_multiprocessing="auto"``).
        workers: parallel workers (1 for the baseline), or ``"auto"`` for stoker.
        queue: finished batches allowed to wait (``max_queue_size``), or ``"auto"``.
    """

    loader: str
    mode: str
    workers: Count
    queue: Count

    @property
    def label(self) -> str:
        if self.loader == "serial":
            return "serial (no loader)"
        return f"{self.loader} {self.mode} W={self.workers} Q={self.queue}"

    @property
    def is_auto(self) -> bool:
        """Whether stoker chooses any of the settings while it runs."""
        return AUTO in (self.mode, self.workers, self.queue)

    @property
    def slug(self) -> str:
        """A file name's stem: ``thread-w4-q10``, ``auto-wauto-qauto``."""
        return f"{self.mode}-w{self.workers}-q{self.queue}"


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a runner can run here, and what to do when it cannot."""

    name: str
    available: bool
    version: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Runner:
    """One contender: subclasses say which modes they have and how they iterate."""

    name = ""
    modes: tuple[str, ...] = MODES

    def availability(self) -> Availability:
        """Whether this runner's library is importable here (imports it if so)."""
        return Availability(self.name, True, stoker.__version__, "")

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        """Yield one epoch of ``source`` under ``setting``; may fill ``extras``."""
        raise NotImplementedError


class SerialRunner(Runner):
    """The baseline: ``source[i]`` in a plain loop, as a script without a loader."""

    name = "serial"
    modes = ("serial",)

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        for i in range(len(source)):
            extras["index"] = i  # names the batch if the source raises
            yield source[i]


class StokerRunner(Runner):
    """``stoker.Loader`` with the setting's workers, mode and ``max_queue_size``.

    Args:
        trace_dir: when set, every run writes a Chrome/Perfetto trace there
            (``Loader(trace=...)``), named after the setting (:func:`trace_path`); a
            later repeat of the same setting overwrites it. The trace is written at
            ``close()``, inside the measured time.
    """

    name = "stoker"
    modes = STOKER_MODES

    def __init__(self, trace_dir: str | Path | None = None) -> None:
        self.trace_dir = None if trace_dir is None else Path(trace_dir)

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        trace = None
        if self.trace_dir is not None:
            trace = trace_path(self.trace_dir, setting)
            extras["trace"] = str(trace)
        mp: bool | Literal["auto"] = (
            AUTO if setting.mode == AUTO else setting.mode == "process"
        )
        loader = stoker.Loader(
            source,
            workers=setting.workers,
            use_multiprocessing=mp,
            max_queue_size=setting.queue,
            timeout=BATCH_TIMEOUT_S,
            trace=None if trace is None else str(trace),
        )
        try:
            yield from loader
        finally:
            loader.close()
            summary = loader.stats.summary()
            extras["verdict"] = summary.get("verdict")
            extras["advice"] = summary.get("advice")
            if setting.is_auto:
                extras["tuned"] = tuned(summary)


def fixed(value: Count, name: str) -> int:
    """A peer's count: peers take fixed numbers only (the sweep never gives them
    "auto"; a caller of :func:`stoker.bench.measure` might)."""
    if isinstance(value, int):
        return value
    raise ConfigError(
        f"{name}={value!r}: only stoker sizes itself; give this peer a number"
    )


def tuned(summary: dict[str, Any]) -> dict[str, Any]:
    """Where the controller ended, from ``loader.stats.summary()``.

    Returns:
        ``workers``, ``mode``, ``queue`` in force at the end, the number of
        ``decisions`` and the ``tuning`` list itself.
    """
    decisions = list(summary.get("tuning") or [])
    return {
        "workers": summary.get("workers"),
        "mode": summary.get("mode"),
        "queue": summary.get("max_queue_size"),
        "decisions": len(decisions),
        "tuning": decisions,
    }


def trace_path(folder: str | Path, setting: Setting) -> Path:
    """Where ``stoker bench --trace`` puts one setting's trace.

    The name says the setting (``thread-w4-q10.trace.json``), with the loader first
    for anything but stoker, so a folder of traces reads as the sweep's grid.
    """
    stem = (
        setting.slug
        if setting.loader == "stoker"
        else f"{setting.loader}-{setting.slug}"
    )
    return Path(folder) / (re.sub(r"[^A-Za-z0-9_.-]+", "-", stem) + ".trace.json")
