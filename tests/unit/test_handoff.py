"""``HandoffRun``: an epoch that moves to another backend in its middle, with fake
runs (no workers, no clock), so every step of the move is scripted."""

from __future__ import annotations

import collections

from stoker._engine.handoff import HandoffRun
from stoker._engine.run import Result


def result(pos: int) -> Result:
    return Result(pos, pos, 0.0, 0.0, 0, None, 0, pos)


class FakeRun:
    """Tasks 'start' when ``started`` says; ``finish`` makes a started one report."""

    def __init__(self, tasks: list[tuple[int, int]], name: str) -> None:
        self.todo = collections.deque(tasks)
        self.started: list[int] = []
        self.ready: collections.deque[Result] = collections.deque()
        self.name = name
        self.released = 0
        self.stopped = False
        self.joined = False

    def start(self, k: int) -> None:
        for _ in range(k):
            self.started.append(self.todo.popleft()[0])

    def finish(self, pos: int) -> None:
        assert pos in self.started
        self.ready.append(result(pos))

    def hand_over(self) -> list[tuple[int, int]]:
        rest = list(self.todo)
        self.todo.clear()
        return rest

    def get(self, timeout_s: float) -> Result | None:
        return self.ready.popleft() if self.ready else None

    def release(self) -> None:
        self.released += 1

    def check(self) -> None:
        pass

    def waiting(self) -> int:
        return len(self.ready)

    def stop(self) -> None:
        self.stopped = True

    def join(self, timeout_s: float) -> bool:
        self.joined = True
        return True


def tasks(n: int) -> list[tuple[int, int]]:
    return [(p, p) for p in range(n)]


def test_a_move_hands_over_what_was_not_started_and_drains_the_old_run_first():
    old = FakeRun(tasks(10), "old")
    run = HandoffRun(old, 10)
    old.start(4)  # positions 0-3 started
    old.finish(0)
    assert run.get(0).pos == 0
    run.release()  # the loop took batch 0
    rest, owed = run.hand_over()
    assert [p for p, _ in rest] == list(range(4, 10))
    assert owed == 3  # batches 1-3 are out and not yet taken
    new = FakeRun(rest, "new")
    repaid: list[int] = []
    retired: list[bool] = []
    run.move_to(new, len(rest), repaid.append, lambda: retired.append(True))
    assert not run.can_move  # one move at a time
    new.start(2)
    new.finish(4)
    old.finish(1)
    # The old run's batch comes first; the new one's is returned when the old has
    # nothing ready (ordered delivery buffers it).
    assert run.get(0).pos == 1
    assert run.get(0).pos == 4
    old.finish(2)
    old.finish(3)
    assert run.get(0).pos == 2
    assert not retired
    assert run.get(0).pos == 3
    assert retired == [True]  # every started task of the old run reported
    # Releases pay the old run's batches back first, then go to the new run.
    for _ in range(3):
        run.release()
    assert repaid == [2, 1, 0] and new.released == 0 and old.released == 1
    run.release()
    assert new.released == 1
    assert run.can_move


def test_a_move_with_nothing_left_only_drains():
    old = FakeRun(tasks(3), "old")
    run = HandoffRun(old, 3)
    old.start(3)
    rest, owed = run.hand_over()
    assert rest == [] and owed == 3
    retired: list[bool] = []
    run.move_to(None, 0, lambda owed: None, lambda: retired.append(True))
    for p in range(3):
        old.finish(p)
        assert run.get(0).pos == p
    assert retired == [True]
    assert run.get(0) is None and run.waiting() == 0


def test_a_move_after_every_result_arrived_retires_at_once():
    old = FakeRun(tasks(2), "old")
    run = HandoffRun(old, 2)
    old.start(2)
    old.finish(0)
    old.finish(1)
    assert run.get(0).pos == 0 and run.get(0).pos == 1
    rest, owed = run.hand_over()
    retired: list[bool] = []
    run.move_to(None, 0, lambda owed: None, lambda: retired.append(True))
    assert (rest, owed, retired) == ([], 2, [True])


def test_stop_and_join_reach_both_runs_during_a_move():
    old = FakeRun(tasks(6), "old")
    run = HandoffRun(old, 6)
    old.start(2)
    rest, _ = run.hand_over()
    new = FakeRun(rest, "new")
    run.move_to(new, len(rest), lambda owed: None, lambda: None)
    run.stop()
    assert run.join(1.0)
    assert old.stopped and new.stopped and old.joined and new.joined


def test_a_second_move_in_the_same_epoch_counts_from_the_first():
    old = FakeRun(tasks(8), "old")
    run = HandoffRun(old, 8)
    old.start(2)
    rest, owed = run.hand_over()
    mid = FakeRun(rest, "mid")
    run.move_to(mid, len(rest), lambda owed: None, lambda: None)
    for p in (0, 1):
        old.finish(p)
        assert run.get(0).pos == p
        run.release()
    assert run.can_move and old.released == 0 and mid.released == 0
    mid.start(3)  # positions 2-4
    mid.finish(2)
    assert run.get(0).pos == 2
    run.release()
    rest, owed = run.hand_over()
    assert [p for p, _ in rest] == [5, 6, 7] and owed == 2  # 3 and 4
