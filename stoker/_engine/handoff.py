"""An epoch that moves from one backend to another in its middle (``use_multiprocessing=
"auto"``).

When the autotuner moves a loader from threads to processes (or back), waiting for
the next epoch start would leave a long first epoch on the wrong workers: measured on
the GIL-bound ``cpu`` workload, a 10 s epoch ran at 0.55 of the processes' speed
although the move was decided at 0.18 s. So the move happens between two batches:

1. The old run starts no new task and hands back those it has not started
   (``hand_over``). Those it started still finish and report through its ``get``.
2. Until every started task of the old run has reported, ``get`` takes its batches
   (in position order they come first: the old run took the tasks in order).
3. Then the old backend is retired and the new one starts a run of the handed-back
   tasks for the same epoch (``move_to`` says why not at once: ``fork``).

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

# While the old run has work out, the longest wait on it before it is asked again
# whether it has settled.
_SLICE_S = 0.002


class HandoffRun:
    """An ``EpochRun`` that can move its remaining tasks to another backend.

    Until a move it costs nothing per batch: ``get``, ``release``, ``check`` and
    ``waiting`` are the run's own bound methods, set on the instance (``deliver``
    reads ``run.get`` again after each batch of a movable run). A wrapper method
    measured 0.2 us more per batch on the tiny workload (6.67 -> 6.89 us), a third
    of what ``"auto"`` may cost there. Nothing is counted per batch either: the
    batches the loop took come from ``delivered``, the loader's own set.

    Args:
        run: the epoch's run on the backend in force.
        tasks: how many tasks ``run`` was started with.
        delivered: the positions of this epoch handed to the loop so far (the
            loader's set, which grows as the loop takes batches).
    """

    def __init__(self, run: EpochRun, tasks: int, delivered: set[int]) -> None:
        self._old: EpochRun | None = None
        self._delivered = delivered
        self._owed = 0  # the old run's batches the loop has not taken yet
        self._repay: Callable[[int], None] | None = None
        self._retire: Callable[[], None] | None = None
        self._start: Callable[[], EpochRun | None] | None = None
        self._use(run, tasks, len(delivered))

    def _use(self, run: EpochRun, tasks: int, before: int) -> None:
        """Hand ``run``'s methods to callers directly (no wrapper frame)."""
        self._run = run
        self._tasks = tasks  # given to the run in force
        self._before = before  # delivered count from which its batches count
        self.get = run.get
        self.check = run.check
        self.waiting = run.waiting
        if not self._owed:
            self.release = run.release

    # -- the move ------------------------------------------------------------------
    @property
    def can_move(self) -> bool:
        """No move is under way (a second one waits for the first to settle)."""
        return self._old is None and not self._owed

    def hand_over(self) -> tuple[list[Task], int]:
        """Start no new task on the run in force: ``(tasks not started, batches of it
        the loop has not taken)``; ``move_to`` must follow.

        A batch the loop took was started by this run, so the loop took
        ``len(delivered) - before`` of the ``started``."""
        rest: list[Task] = self._run.hand_over()  # type: ignore[attr-defined]
        started = self._tasks - len(rest)
        self._owed = started - (len(self._delivered) - self._before)
        return rest, self._owed

    def move_to(
        self,
        start: Callable[[], EpochRun | None],
        tasks: int,
        repay: Callable[[int], None],
        retire: Callable[[], None],
    ) -> None:
        """Continue with the ``tasks`` that ``hand_over`` returned, on the run that
        ``start`` starts once the old run has settled (None: none were left).

        Why not at once: with ``fork``, a process started while thread workers are
        inside ``source[i]`` copies whatever lock they hold (the source's own, an
        import's), held, into a child that may then wait on it forever. Started
        after the old run settled, the threads are gone (``retire`` closed them):
        the same state as a move at an epoch start. The wait is the threads' last
        batches, which the loop takes meanwhile.

        Args:
            start: starts the new backend's run (called once, here or in ``get``).
            tasks: how many tasks it will be started with.
            repay: called with the batches still owed each time the loop takes
                one (the new run may then have one token more, up to its budget).
            retire: called once the old run has reported every task it started,
                before ``start``.
        """
        old = self._run
        self._use(_Empty(), tasks, len(self._delivered) + self._owed)
        self._old = old
        self._start = start
        self._repay, self._retire = repay, retire
        self.get = self._get_old
        self.check = self._check_both
        self.waiting = self._waiting_both
        if self._owed:
            self.release = self._release_owed
        if old.settled():  # type: ignore[attr-defined]
            self._settled()

    def _settled(self) -> None:
        """The old run reported every task it started: retire it, start the new."""
        self._old = None
        if self._retire is not None:
            retire, self._retire = self._retire, None
            retire()
        start, self._start = self._start, None
        run = start() if start is not None else None
        if run is not None:
            self._use(run, self._tasks, self._before)
        run = self._run
        self.get, self.check, self.waiting = run.get, run.check, run.waiting

    # -- EpochRun, while the old run has work out --------------------------------------
    def _get_old(self, timeout_s: float) -> Result | None:
        old = self._old
        if old is None:  # settled while the caller still held this method
            return self._run.get(timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            got = old.get(0.0)
            if got is not None:
                return got
            if old.settled():  # type: ignore[attr-defined]
                self._settled()
                return self._run.get(max(0.0, deadline - time.monotonic()))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            got = old.get(min(_SLICE_S, remaining))
            if got is not None:
                return got

    def _release_owed(self) -> None:
        self._owed -= 1
        if not self._owed:
            self.release = self._run.release
        if self._repay is not None:
            self._repay(self._owed)

    def _check_both(self) -> None:
        if self._old is not None:
            self._old.check()
        self._run.check()

    def _waiting_both(self) -> int:
        old = 0 if self._old is None else self._old.waiting()
        return old + self._run.waiting()

    def stop(self) -> None:
        self._start = None  # a run not started yet never starts
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

    def settled(self) -> bool:
        return True
