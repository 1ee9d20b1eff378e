"""How each contender iterates one epoch of a source: the common runner interface.

A runner's :meth:`Runner.iterate` is a generator over one epoch's batches that
creates its workers when it starts and releases them in its ``finally``, so the time
to start and stop workers is part of the measured run, as it is part of a real
epoch. This module has the serial baseline and stoker itself; the peers (Keras,
torch) are in :mod:`stoker.bench.peers`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import stoker

# No batch of a built-in workload takes more than a second; a minute means a hang,
# and a benchmark must end with an error rather than wait forever.
BATCH_TIMEOUT_S = 60.0
MODES = ("thread", "process")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configuration of the sweep.

    Attributes:
        loader: ``"serial"``, ``"stoker"``, ``"keras"`` or ``"torch"``.
        mode: ``"thread"`` or ``"process"`` (``"serial"`` for the baseline).
        workers: parallel workers (1 for the baseline).
        queue: finished batches allowed to wait (``max_queue_size``).
    """

    loader: str
    mode: str
    workers: int
    queue: int

    @property
    def label(self) -> str:
        if self.loader == "serial":
            return "serial (no loader)"
        return f"{self.loader} {self.mode} W={self.workers} Q={self.queue}"


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
    """``stoker.Loader`` with the setting's workers, mode and ``max_queue_size``."""

    name = "stoker"

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        loader = stoker.Loader(
            source,
            workers=setting.workers,
            use_multiprocessing=setting.mode == "process",
            max_queue_size=setting.queue,
            timeout=BATCH_TIMEOUT_S,
        )
        try:
            yield from loader
        finally:
            loader.close()
            summary = loader.stats.summary()
            extras["verdict"] = summary.get("verdict")
            extras["advice"] = summary.get("advice")
