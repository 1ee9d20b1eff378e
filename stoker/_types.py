"""Small shared types: the observer protocol and the events it receives.

The engine reports what it does through :class:`Observer`; it knows nothing of who
listens (the tracker, the autotuner, a progress bar). Observers are attached to a
loader explicitly (``Loader(observers=[...])``) or for a scope through
:func:`observe_all`, which is how ``stoker.track`` picks up every loader created inside
its ``with`` block without the engine importing the tracker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

_log = logging.getLogger("stoker")


class BatchEvent(NamedTuple):
    """One delivered batch, as the consumer saw it.

    Attributes:
        loader_id: the loader's id (unique within the process).
        epoch: the epoch number, from 0.
        position: the batch's position within the epoch, from 0.
        source_index: the key the source was called with (a batch index; for per-sample
            sources, the batch's position).
        wait_s: seconds the consumer waited for this batch.
        produce_s: seconds the worker spent computing it.
        queue_depth: finished batches waiting when it was delivered (itself included).
        nbytes: bytes of array data in the batch (0 when it holds no arrays).
    """

    loader_id: str
    epoch: int
    position: int
    source_index: int
    wait_s: float
    produce_s: float
    queue_depth: int
    nbytes: int


@runtime_checkable
class Observer(Protocol):
    """What the engine calls; every method must return quickly and never raise.

    The engine catches and logs an observer's exception rather than fail training.
    """

    def on_start(self, loader_id: str, settings: dict[str, Any]) -> None:
        """A loader was created with these settings (plain JSON-able values)."""

    def on_batch(self, event: BatchEvent) -> None:
        """A batch was handed to the consumer."""

    def on_epoch_end(self, loader_id: str, epoch: int, summary: dict[str, Any]) -> None:
        """An epoch finished (or was cut short); ``summary`` is ``stats.summary()``."""

    def on_close(self, loader_id: str, summary: dict[str, Any]) -> None:
        """The loader closed; ``summary`` covers its whole life."""


_scope_lock = threading.Lock()
_scoped_observers: list[Observer] = []


@contextlib.contextmanager
def observe_all(observer: Observer) -> Iterator[Observer]:
    """Attach ``observer`` to every loader created while the block runs."""
    with _scope_lock:
        _scoped_observers.append(observer)
    try:
        yield observer
    finally:
        with _scope_lock, contextlib.suppress(ValueError):
            _scoped_observers.remove(observer)


def scoped_observers() -> list[Observer]:
    """The observers :func:`observe_all` has in force now (a copy)."""
    with _scope_lock:
        return list(_scoped_observers)


def notify(observers: list[Observer], method: str, *args: Any) -> None:
    """Call ``method`` on each observer; log, never raise, what an observer raises."""
    for obs in observers:
        try:
            getattr(obs, method)(*args)
        except Exception:  # an observer must never break training
            _log.exception("stoker observer %r failed in %s", obs, method)
