"""A background stage that runs a per-batch transfer ahead of the training step.

Rule: one thread per epoch pulls batches from the loader's epoch iterator, applies the
transfer (tensors, pinned memory, a device copy), and hands them over through a queue;
at most ``depth`` transferred batches wait for the consumer at any time. Every wait
on either side is a poll with a timeout that re-checks the stop signal or the other
side's liveness, so nothing can wait forever:

- the stage takes a *slot* (a semaphore of ``depth``) before it asks the loader for a
  batch, and the consumer gives the slot back when it takes the batch: the bound
  holds without a blocking ``put``;
- the consumer polls the queue and, if the thread has ended without leaving a result,
  raises instead of waiting;
- an exception from the loader or the transfer crosses as it is (its type and
  traceback) and is raised in the consumer at the position of the batch it replaced;
- ``close()`` (also on ``break``, on an exception in the loop body, and by a
  ``weakref.finalize`` when the iterator is dropped) sets the stop signal and joins
  the thread within ``_JOIN_TIMEOUT_S``. The thread itself closes the loader's epoch
  iterator when it stops, exactly as a ``break`` in a plain ``for`` loop would: the
  loader's generator may only be touched by the thread that runs it.

Why a thread and not a deque advanced by the consumer (Flax's ``prefetch_to_device``):
a host-to-device copy, and pinning, take time on the consumer's thread there; here
they overlap the step, which is what ``DataLoader(pin_memory=True)`` users expect.

The module imports no framework: the torch and JAX adapters give it their transfer.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import stoker

# How often a waiting side re-checks the stop signal or the other side's liveness.
_POLL_S = 0.05
# How long close() waits for the thread: it may be inside the loader's next() for a
# batch still being computed; the loader's own `timeout=` bounds that wait too.
_JOIN_TIMEOUT_S = 10.0


class _Ready(NamedTuple):
    """A transferred batch and what the consumer must do with it (see ``finish``)."""

    batch: Any
    extra: Any


class _Failed(NamedTuple):
    """The loader or the transfer raised: the consumer raises ``error``."""

    error: BaseException


class _End(NamedTuple):
    """The loader's epoch is over."""


def _run(
    batches: Iterator[Any],
    transfer: Callable[[Any], tuple[Any, Any]],
    out: queue.SimpleQueue[Any],
    slots: threading.Semaphore,
    stop: threading.Event,
    after: Callable[[], Any] | None,
) -> None:
    """The stage thread: holds no reference to the consumer-side object."""
    try:
        while not stop.is_set():
            if not slots.acquire(timeout=_POLL_S):
                continue
            if stop.is_set():
                break
            try:
                batch = next(batches)
            except StopIteration:
                out.put(_End())
                return
            snapshot = after() if after is not None else None
            moved, extra = transfer(batch)
            del batch  # the transferred copy is all that the stage keeps
            out.put(_Ready(moved, (extra, snapshot)))
    except BaseException as exc:  # any error crosses to the consumer, with its type
        out.put(_Failed(exc))
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # ends a cut epoch as a `break` would, on the thread that ran it


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    if thread is not threading.current_thread():
        thread.join(_JOIN_TIMEOUT_S)


class Prefetcher:
    """Iterates ``transfer(batch)`` for every batch of ``batches``, ``depth`` ahead.

    Args:
        batches: one epoch of a ``stoker.Loader`` (``iter(loader)``); the stage owns
            it from now on.
        transfer: runs on the stage thread; returns ``(batch, extra)``.
        depth: transferred batches allowed to wait for the consumer (>= 1).
        name: the thread's name (the loader's id first, so leak checks see it).
        finish: runs on the consumer's thread with ``(batch, extra)`` before the
            batch is handed out (a CUDA stream wait); returns the batch.
        snapshot: runs on the stage thread right after each batch arrives; its
            result is kept as ``last_snapshot`` once that batch is handed out.
    """

    def __init__(
        self,
        batches: Iterator[Any],
        transfer: Callable[[Any], tuple[Any, Any]],
        depth: int,
        name: str,
        finish: Callable[[Any, Any], Any] | None = None,
        snapshot: Callable[[], Any] | None = None,
    ) -> None:
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._finish = finish
        self.taken = 0  # batches handed to the consumer
        self.last_snapshot: Any = None
        self.done = False
        self._thread = threading.Thread(
            target=_run,
            args=(batches, transfer, self._out, self._slots, self._stop, snapshot),
            name=name,
            daemon=True,  # a safety net only: close() and the finalizer join it
        )
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._unstarted: Iterator[Any] | None = batches

    def _start(self) -> None:
        # Started by the first next(), not by iter(): a caller that only asks for an
        # iterator (Lightning does, to inspect it) must not start an epoch.
        self._unstarted = None
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop, self._stop, self._thread)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        if self._finalizer is None:
            self._start()
        item = self._get()
        if isinstance(item, _Ready):
            self._slots.release()
            extra, self.last_snapshot = item.extra
            batch = item.batch
            if self._finish is not None:
                batch = self._finish(batch, extra)
            self.taken += 1
            return batch
        self.done = True
        self.close()
        if isinstance(item, _Failed):
            raise item.error
        raise StopIteration

    def _get(self) -> Any:
        while True:
            try:
                return self._out.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._out.empty():
                    raise stoker.StokerError(
                        f"the prefetch thread {self._thread.name} ended without "
                        "handing over a result; this is a bug in stoker, please "
                        "report it"
                    ) from None

    def close(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self.done = True
        if self._finalizer is None:  # never started: close the epoch it was given
            close = getattr(self._unstarted, "close", None)
            self._unstarted = None
            if close is not None:
                close()
            return
        self._finalizer()
        if self._thread.is_alive():
            raise stoker.LoaderTimeout(
                f"the prefetch thread {self._thread.name} did not stop within "
                f"{_JOIN_TIMEOUT_S:.0f} s: the loader is still computing a batch. "
                "Give the loader a timeout=... to bound a slow source"
            )
