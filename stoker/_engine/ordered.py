"""Consumer side of an epoch: restore order, enforce the timeout, surface failures.

``deliver`` pulls results from an ``EpochRun`` and yields them in position order
(``ordered=True``: later batches wait in a reorder buffer, bounded by the run's token
budget) or as they complete. It never blocks longer than ``_POLL_S`` without checking
that the workers are alive, so a dead worker surfaces as ``WorkerCrashed`` instead of
a hang. The first failure in delivery order wins: the user's exception is raised with
its own type, traceback and the note the worker added.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from stoker._engine.handoff import HandoffRun
from stoker._engine.run import EpochRun, Result
from stoker._errors import LoaderTimeout

# Longest uninterrupted wait before liveness and the timeout are re-checked.
_POLL_S = 0.05


def _timeout_error(timeout: float, pos: int, epoch: int, workers: int) -> LoaderTimeout:
    return LoaderTimeout(
        f"no batch arrived within timeout={timeout} s while waiting for batch {pos} of "
        f"epoch {epoch} ({workers} workers busy). If source[i] is just slow, raise "
        "`timeout`; otherwise look for a hang in source[i] (a lock, a network call "
        "without its own timeout)."
    )


def deliver(
    run: EpochRun,
    positions: list[int],
    *,
    ordered: bool,
    timeout: float | None,
    epoch: int,
    workers: int,
    buffer: dict[int, Result] | None = None,
) -> Iterator[tuple[Result, float, int]]:
    """Yield ``(result, wait_s, queue_depth)`` for every position, as documented above.

    Args:
        run: the epoch's run; its tasks cover exactly ``positions``.
        positions: the positions to deliver, ascending.
        ordered: deliver in position order (else as completed).
        timeout: seconds to wait for one batch before ``LoaderTimeout``; None: forever.
        epoch: the epoch number, for messages.
        workers: the worker count, for messages.
        buffer: the reorder buffer, owned by the caller so that what is left in it
            when the epoch is cut short can be kept (generator sources).

    Raises:
        LoaderTimeout: no batch within ``timeout``.
        WorkerCrashed: a worker died (from ``run.check``).
        BaseException: whatever ``source[i]`` raised, with its note.
    """
    if buffer is None:
        buffer = {}
    clock = time.perf_counter
    get = run.get
    # A run that can move to another backend mid-epoch swaps its ``get`` then
    # (handoff.py): read it again after each batch.
    movable = isinstance(run, HandoffRun)
    for expected in positions:
        t0 = clock()
        deadline = None if timeout is None else t0 + timeout
        result = buffer.pop(expected, None) if ordered else None
        while result is None:
            got = get(_POLL_S)
            if got is None:
                run.check()
                if deadline is not None and clock() > deadline:
                    raise _timeout_error(timeout or 0.0, expected, epoch, workers)
                continue
            if not ordered or got.pos == expected:
                result = got
            else:
                buffer[got.pos] = got
        wait = clock() - t0
        if result.error is not None:
            raise result.error
        yield result, wait, len(buffer) + run.waiting() + 1
        if movable:
            get = run.get
