"""An epoch that moves from one backend to another in its middle (``use_multiprocessing=
"auto"``).

When the autotuner moves a loader from threads to processes (or back), waiting for
the next epoch start would leave a long first epoch on the wrong workers: measured on
the GIL-bound ``cpu`` workload, a 10 s epoch ran at 0.55 of the processes' speed
although the move was decided at 0.18 s. So the move happens between two batches:

1. The old run starts no new task and hands back those it has not started
   (``hand_over``). Those it started still finish and report through its ``get``.
2. The new backend starts a run of the handed-back tasks for the same epoch.
3. Until every started task of the old run has reported, ``get`` takes from both
   (old first: in position order its batches come first, as the old run took the
   tasks in order); then the old backend is retired.

Nothing is dropped, repeated or reordered: each task is in exactly one run, and
``ordered.deliver`` orders what both return. A batch's bytes depend only on
``(seed, epoch, index)``, so which run computed it does not show.

The bound: batches of the old run not yet handed to the loop (``owed``) still hold
memory, so the new run starts with that many fewer tokens, and gets one more each
time the loop takes one of them (``repay``), until it has its whole budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stoker._engine.run import EpochRun, Result, Task

# While both runs have work out, the longest wait on the old run before the new one
# is polled (its results, and its workers' start, move only when polled).
_SLICE_S = 0.002


class HandoffRun:
    """An ``EpochRun`` that can move its remaining tasks to another backend.

    Args:
        run: the epoch's run on the backend in force.
        tasks: how many tasks ``run`` was started with.
    """

    def __init__(self, run: EpochRun, tasks: int) -> None:
        self._run = run
        self._old: EpochRun | None = None
        # The run in force: tasks it was given, results it reported, batches of it
        # the loop took. After a move, the old run's figures become these two:
        self._tasks = tasks
        self._got = 0
        self._released = 0
        self._owed = 0  # the old run's batches the loop has not taken yet
        self._left = 0  # the old run's started tasks that have not reported yet
        self._repay: Callable[[int], None] | None = None
        self._retire: Callable[[], None] | None = None

    # -- the move ------------------------------------------------------------------
    @property
    def can_move(self) -> bool:
        """No move is under way (a second one waits for the first to settle)."""
        return self._old is None and self._owed == 0

    def hand_over(self) -> tuple[list[Task], int]:
        """Start no new task on the run in force: ``(tasks not started, batches of it
        the loop has not taken)``; ``move_to`` must follow."""
        rest: list[Task] = self._run.hand_over()  # type: ignore[attr-defined]
        started = self._tasks - len(rest)
        self._left = started - self._got
        self._owed = started - self._released
        return rest, self._owed

    def move_to(
        self,
        run: EpochRun | None,
        tasks: int,
        repay: Callable[[int], None],
        retire: Callable[[], None],
    ) -> None:
        """Continue on ``run``, started with the ``tasks`` that ``hand_over``
        returned (None: none were left).

        Args:
            run: the new backend's run.
            tasks: how many tasks it was started with.
            repay: called with the batches still owed each time the loop takes
                one (the new run may then have one token more, up to its budget).
            retire: called once the old run has reported every task it started.
        """
        self._old, self._run = self._run, run if run is not None else _Empty()
        self._tasks, self._got, self._released = tasks, 0, 0
        self._repay, self._retire = repay, retire
        if self._left <= 0:
            self._retired()

    def _retired(self) -> None:
        self._old = None
        if self._retire is not None:
            retire, self._retire = self._retire, None
            retire()

    # -- EpochRun ------------------------------------------------------------------
    def get(self, timeout_s: float) -> Result | None:
        old = self._old
        if old is None:
            got = self._run.get(timeout_s)
            if got is not None:
                self._got += 1
            return got
        # Both runs have work out: the old one's batches come first in order, and
        # the new one is polled between short waits so that its workers start.
        deadline = time.monotonic() + timeout_s
        while True:
            got = old.get(min(_SLICE_S, timeout_s))
            if got is not None:
                self._left -= 1
                if self._left <= 0:
                    self._retired()
                return got
            got = self._run.get(0.0)
            if got is not None:
                self._got += 1
                return got
            if time.monotonic() >= deadline:
                return None

    def release(self) -> None:
        if self._owed:
            self._owed -= 1
            if self._repay is not None:
                self._repay(self._owed)
            return
        self._released += 1
        self._run.release()

    def check(self) -> None:
        if self._old is not None:
            self._old.check()
        self._run.check()

    def waiting(self) -> int:
        old = 0 if self._old is None else self._old.waiting()
        return old + self._run.waiting()

    def stop(self) -> None:
        if self._old is not None:
            self._old.stop()
        self._run.stop()

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        idle = True
        if self._old is not None:
            idle = self._old.join(timeout_s)
        left = max(0.0, deadline - time.monotonic())
        return self._run.join(left) and idle


class _Empty:
    """The new run when no task was left to move: reports nothing, holds nothing."""

    def get(self, timeout_s: float) -> Result | None:
        return None

    def release(self) -> None:
        pass

    def check(self) -> None:
        pass

    def waiting(self) -> int:
        return 0

    def stop(self) -> None:
        pass

    def join(self, timeout_s: float) -> bool:
        return True

    def hand_over(self) -> list[Task]:
        return []
