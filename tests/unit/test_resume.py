"""Reproducible and resumable: resume equals an uninterrupted run; shards partition."""

from __future__ import annotations

import json

import pytest

import stoker
from tests import sources
from tests.harness import as_bytes, make

pytestmark = pytest.mark.timeout(60)

N = 11
EPOCHS = 3


def uninterrupted(backend, **opts):
    with make(sources.Jittery(n=N), backend, **opts) as loader:
        return [[as_bytes(b) for b in loader] for _ in range(EPOCHS)]


@pytest.mark.parametrize(
    "stop_at",
    [(0, 0), (0, 5), (1, 0), (1, N - 1), (2, N - 1)],
    ids=["start", "middle", "epoch-boundary", "last-batch", "final-batch"],
)
def test_resume_equals_uninterrupted(backend, stop_at):
    opts = dict(workers=3, shuffle=True, seed=11)
    reference = uninterrupted(backend, **opts)
    stop_epoch, stop_pos = stop_at
    got: list[list[bytes]] = [[] for _ in range(EPOCHS)]
    with make(sources.Jittery(n=N), backend, **opts) as first:
        state = None
        for e in range(stop_epoch + 1):
            for k, b in enumerate(first):
                got[e].append(as_bytes(b))
                if e == stop_epoch and k == stop_pos:
                    state = json.loads(json.dumps(first.state_dict()))
                    break
    # Simulated preemption: a new process would build a new loader from the state.
    with make(
        sources.Jittery(n=N), backend, workers=2, shuffle=True, seed=None
    ) as again:
        assert state is not None
        again.load_state_dict(state)
        for e in range(again.epoch, EPOCHS):
            got[e].extend(as_bytes(b) for b in again)
    assert got == reference


def test_resume_unordered_delivers_the_rest_exactly_once(backend):
    with make(sources.Jittery(n=20), backend, workers=4, ordered=False, seed=1) as a:
        it = iter(a)
        before = [int(next(it)[0][0]) for _ in range(7)]
        state = a.state_dict()
        del it
    with make(sources.Jittery(n=20), backend, workers=4, ordered=False, seed=1) as b:
        b.load_state_dict(state)
        after = [int(x[0]) for x, _ in b]
    assert sorted(before + after) == list(range(20))


def test_bad_states_are_refused_with_the_reason():
    with stoker.Loader(sources.Indexed(n=8), seed=1) as loader:
        good = loader.state_dict()
        with pytest.raises(stoker.ConfigError, match="version"):
            loader.load_state_dict({**good, "version": 99})
        with pytest.raises(stoker.ConfigError, match="length=8"):
            loader.load_state_dict({**good, "length": 9})
        with pytest.raises(stoker.ConfigError, match="Loader.state_dict"):
            loader.load_state_dict({"epoch": 3})
    with stoker.Loader(sources.Indexed(n=8), seed=2) as other:
        with pytest.raises(stoker.ConfigError, match="seed=1"):
            other.load_state_dict(good)


def test_load_state_during_iteration_is_refused():
    with stoker.Loader(sources.Indexed(n=8)) as loader:
        it = iter(loader)
        next(it)
        with pytest.raises(stoker.ConfigError, match="before the `for` loop"):
            loader.load_state_dict(loader.state_dict())
        del it


@pytest.mark.parametrize("count", [1, 3, 4])
def test_shards_are_disjoint_and_cover_each_epoch(backend, count):
    per_epoch: list[list[int]] = [[], []]
    for index in range(count):
        with make(
            sources.Indexed(n=14),
            backend,
            workers=2,
            shuffle=True,
            seed=4,
            shard=(index, count),
        ) as loader:
            for e in range(2):
                per_epoch[e].extend(int(x[0]) for x, _ in loader)
    for ids in per_epoch:
        assert sorted(ids) == list(range(14))
    with make(sources.Indexed(n=14), backend, shuffle=True, seed=4) as whole:
        assert [int(x[0]) for x, _ in whole] != list(range(14))


def test_drop_last_evens_shards():
    lengths = {
        len(stoker.Loader(sources.Indexed(n=14), shard=(i, 4), drop_last=True))
        for i in range(4)
    }
    assert lengths == {3}
    uneven = [len(stoker.Loader(sources.Indexed(n=14), shard=(i, 4))) for i in range(4)]
    assert uneven == [4, 4, 3, 3]


def test_failed_epoch_start_leaves_the_loader_resumable(monkeypatch):
    with stoker.Loader(sources.Indexed(n=4), seed=1) as loader:

        def broken(*args):
            raise stoker.SerializationError("cannot cross")

        monkeypatch.setattr(loader._feed, "start", broken)
        with pytest.raises(stoker.SerializationError):
            next(iter(loader))
        monkeypatch.undo()
        loader.load_state_dict(loader.state_dict())
        assert len(list(loader)) == 4
