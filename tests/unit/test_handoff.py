# mypy: disable-error-code="arg-type,func-returns-value"
"""``HandoffRun``: an epoch that moves to another backend in its middle, with fake
runs (no workers, no clock), so every step of the move is scripted. ``take`` plays
the loader: it gets a result, adds its position to the delivered set, releases."""

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
        self.finished: set[int] = set()
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
        self.finished.add(pos)

    def settled(self) -> bool:
        return not self.ready and self.finished == set(self.started)

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


class Loop:
    """The loader's side: ``delivered`` and the order of get, add, release."""

    def __init__(self, run: HandoffRun, delivered: set[int]) -> None:
        self.run = run
        self.delivered = delivered

    def get(self) -> int | None:
        got = self.run.get(0)
        return None if got is None else got.pos

    def take(self, pos: int) -> None:
        self.delivered.add(pos)
        self.run.release()


def epoch(n: int) -> tuple[FakeRun, HandoffRun, Loop]:
    """An epoch of ``n`` tasks on a fake run, and the loader's side of it."""
    old = FakeRun(tasks(n), "old")
    delivered: set[int] = set()
    run = HandoffRun(old, n, delivered)
    return old, run, Loop(run, delivered)


def test_before_a_move_the_run_s_own_methods_are_used():
    old = FakeRun(tasks(4), "old")
    run = HandoffRun(old, 4, set())
    assert run.get == old.get and run.release == old.release  # no wrapper frame


def test_a_move_hands_over_what_was_not_started_and_drains_the_old_run_first():
    old, run, loop = epoch(10)
    old.start(4)  # positions 0-3 started
    old.finish(0)
    assert loop.get() == 0
    loop.take(0)
    rest, owed = run.hand_over()
    assert [p for p, _ in rest] == list(range(4, 10))
    assert owed == 3  # batches 1-3 are out and not yet taken
    new = FakeRun(rest, "new")
    events: list[str] = []
    repaid: list[int] = []

    def start():
        events.append("start")
        return new

    run.move_to(start, len(rest), repaid.append, lambda: events.append("retire"))
    assert not run.can_move  # one move at a time
    old.finish(1)
    assert loop.get() == 1
    loop.take(1)  # the loop may take an old batch before the new run starts
    old.finish(2)
    old.finish(3)
    assert loop.get() == 2 and loop.get() == 3
    assert events == []  # the new run starts only once the old one settled
    new.start(1)
    new.finish(4)
    assert loop.get() == 4
    assert events == ["retire", "start"] and run.get == new.get
    # Releases pay the old run's batches back first, then go to the new run.
    loop.take(2)
    loop.take(3)
    assert repaid == [2, 1, 0] and new.released == 0 and old.released == 1
    loop.take(4)
    assert new.released == 1
    assert run.can_move


def test_a_move_with_nothing_left_only_drains():
    old, run, loop = epoch(3)
    old.start(3)
    rest, owed = run.hand_over()
    assert rest == [] and owed == 3
    retired: list[bool] = []
    run.move_to(lambda: None, 0, lambda owed: None, lambda: retired.append(True))
    for p in range(3):
        old.finish(p)
        assert loop.get() == p
        loop.take(p)
    assert loop.get() is None and retired == [True]
    assert run.waiting() == 0 and run.can_move


def test_a_move_after_every_result_arrived_starts_the_new_run_at_once():
    old, run, loop = epoch(4)
    old.start(2)
    old.finish(0)
    old.finish(1)
    assert loop.get() == 0 and loop.get() == 1
    rest, owed = run.hand_over()
    new = FakeRun(rest, "new")
    run.move_to(lambda: new, len(rest), lambda owed: None, lambda: None)
    assert run.get == new.get and owed == 2


def test_a_resumed_epoch_counts_only_its_own_batches():
    # Positions 0-4 were delivered before the resume: they are not this run's.
    old = FakeRun([(p, p) for p in range(5, 10)], "old")
    delivered = set(range(5))
    run = HandoffRun(old, 5, delivered)
    loop = Loop(run, delivered)
    old.start(3)
    old.finish(5)
    assert loop.get() == 5
    loop.take(5)
    rest, owed = run.hand_over()
    assert [p for p, _ in rest] == [8, 9] and owed == 2


def test_stop_and_join_reach_both_runs_during_a_move():
    old = FakeRun(tasks(6), "old")
    run = HandoffRun(old, 6, set())
    old.start(2)
    rest, _ = run.hand_over()
    new = FakeRun(rest, "new")
    started: list[bool] = []
    run.move_to(lambda: started.append(True) or new, len(rest), lambda owed: None,
                lambda: None)  # fmt: skip
    run.stop()
    assert run.join(1.0)
    assert old.stopped and old.joined
    old.finish(0)
    old.finish(1)
    run.get(0)
    run.get(0)
    assert run.get(0) is None and not started  # stopped: the new run never starts


def test_a_second_move_in_the_same_epoch_counts_from_the_first():
    old, run, loop = epoch(8)
    old.start(2)
    rest, owed = run.hand_over()
    mid = FakeRun(rest, "mid")
    run.move_to(lambda: mid, len(rest), lambda owed: None, lambda: None)
    for p in (0, 1):
        old.finish(p)
        assert loop.get() == p
        loop.take(p)
    assert loop.get() is None  # retired
    assert run.can_move and old.released == 0 and mid.released == 0
    mid.start(3)  # positions 2-4
    mid.finish(2)
    assert loop.get() == 2
    loop.take(2)
    rest, owed = run.hand_over()
    assert [p for p, _ in rest] == [5, 6, 7] and owed == 2  # 3 and 4
