"""What a backend hands the consumer for one epoch: the ``EpochRun`` protocol.

Each backend (threads, processes, ...) starts an epoch from a list of tasks
``(position, key)`` and returns an object with this protocol; ``ordered.deliver``
drives it from the consumer's side. Keeping the contract this small is what lets one
conformance harness test every backend.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from stoker._engine.plan import Key

Task = tuple[int, Key]


def add_note(exc: BaseException, key: Any, pos: int, epoch: int, worker: str) -> None:
    """Name the failing batch on the user's exception (once)."""
    where = (
        f"source[{key}]" if isinstance(key, int) else f"the batch of samples {key!r}"
    )
    note = f"stoker: raised by {where} (batch {pos} of epoch {epoch}, {worker})"
    if note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


class Result(NamedTuple):
    """One finished task, as a worker reports it.

    Attributes:
        pos: position of the batch in the epoch.
        batch: the batch, or None when ``error`` is set.
        produce_s: wall seconds the worker spent on it.
        cpu_s: CPU seconds the worker spent on it (NaN where unknown).
        nbytes: bytes of array data in the batch.
        error: the exception ``source[i]`` raised (with a note naming the batch).
        worker: index of the worker that ran it.
        source_index: the source index (the position, for per-sample and generator
            sources).
    """

    pos: int
    batch: Any
    produce_s: float
    cpu_s: float
    nbytes: int
    error: BaseException | None
    worker: int
    source_index: int


class EpochRun(Protocol):
    """One epoch on one backend: tasks in, results out, a budget bounding both."""

    def get(self, timeout_s: float) -> Result | None:
        """The next finished result, or None if none came within ``timeout_s``."""

    def release(self) -> None:
        """The consumer took one batch: one more task may start."""

    def check(self) -> None:
        """Raise ``WorkerCrashed`` if a worker died (a no-op where none can)."""

    def waiting(self) -> int:
        """Finished results not yet taken with ``get`` (for queue-depth stats)."""

    def stop(self) -> None:
        """Start no new task; returns at once."""

    def join(self, timeout_s: float) -> bool:
        """Wait for tasks in flight to finish; True if every worker is idle."""


class Backend(Protocol):
    """Runs epochs; may keep workers alive between them."""

    def start_epoch(self, epoch: int, tasks: list[Task]) -> EpochRun:
        """Start computing ``tasks`` of ``epoch``; returns at once."""

    def close(self, timeout_s: float) -> None:
        """Stop every worker and release every resource; idempotent."""
