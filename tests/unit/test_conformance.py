"""The public contract, checked on every backend (see tests/harness.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import stoker
from tests import sources
from tests.harness import epochs_bytes, ids_of, make

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("workers", [1, 3])
def test_every_index_once_in_order(backend, workers):
    with make(sources.Jittery(n=17), backend, workers=workers) as loader:
        assert len(loader) == 17
        for _ in range(2):
            assert ids_of(list(loader)) == list(range(17))


def test_unordered_delivers_every_index_once(backend):
    with make(sources.Jittery(n=20), backend, workers=4, ordered=False) as loader:
        for _ in range(2):
            assert sorted(ids_of(list(loader))) == list(range(20))


def test_shuffle_is_a_permutation_per_epoch_from_the_seed(backend):
    with make(sources.Indexed(n=30), backend, workers=2, shuffle=True, seed=7) as a:
        e0, e1 = ids_of(list(a)), ids_of(list(a))
    assert sorted(e0) == sorted(e1) == list(range(30))
    assert e0 != e1 and e0 != list(range(30))
    with make(sources.Indexed(n=30), backend, workers=3, shuffle=True, seed=7) as b:
        assert ids_of(list(b)) == e0
    with make(sources.Indexed(n=30), backend, workers=3, shuffle=True, seed=8) as c:
        assert ids_of(list(c)) != e0


def test_batches_bit_identical_for_any_worker_count(backend):
    reference = None
    for workers in (1, 2, 8, "auto"):
        with make(
            sources.Jittery(n=16), backend, workers=workers, shuffle=True, seed=3
        ) as loader:
            got = epochs_bytes(loader, 3)
        reference = reference or got
        assert got == reference, f"workers={workers} differs"
    # Against threads with one worker: the backend itself changes nothing either.
    with stoker.Loader(sources.Jittery(n=16), workers=1, shuffle=True, seed=3) as t:
        assert epochs_bytes(t, 3) == reference


def test_break_then_next_epoch_starts_clean(backend):
    with make(sources.Indexed(n=12), backend, workers=3, max_queue_size=2) as loader:
        for k, _ in enumerate(loader):
            if k == 3:
                break
        assert ids_of(list(loader)) == list(range(12))
        assert loader.epoch == 2


def test_steps_per_epoch_continues_through_the_pass(backend):
    with make(sources.Indexed(n=10), backend, workers=2, steps_per_epoch=4) as loader:
        assert len(loader) == 4
        seen = [ids_of(list(loader)) for _ in range(5)]
    assert [len(s) for s in seen] == [4] * 5
    flat = [i for s in seen for i in s]
    assert flat[:10] == list(range(10))  # the first pass, then the second begins
    assert flat[10:] == list(range(10))


def test_per_sample_source_is_batched_and_stacked(backend):
    with make(sources.Samples(n=23), backend, workers=2, batch_size=5) as loader:
        batches = list(loader)
    assert len(batches) == 5
    assert [b["x"].shape for b in batches] == [(5, 3)] * 4 + [(3, 3)]
    assert np.concatenate([b["y"] for b in batches]).tolist() == list(range(23))
    with make(
        sources.Samples(n=23),
        backend,
        batch_size=5,
        drop_last=True,
        shuffle=True,
        seed=1,
    ) as loader:
        batches = list(loader)
    assert [len(b["y"]) for b in batches] == [5] * 4
    ys = np.concatenate([b["y"] for b in batches]).tolist()
    assert len(set(ys)) == 20 and ys != sorted(ys)


def test_structures_and_objects_cross_intact(backend):
    with make(sources.Structured(), backend, workers=2) as loader:
        for i, b in enumerate(loader):
            assert np.array_equal(b["tuple"][0], np.arange(i + 1))
            assert float(b["tuple"][1]) == i
            assert np.array_equal(b["list"][0], np.ones((2, 2)) * i)
            assert b["list"][1:] == ["text", None]
            assert b["obj"] == {"name": f"batch-{i}", "values": list(range(i))}
            assert b["objarray"].tolist() == [f"s{i}", None]


def test_rng_is_the_same_whichever_worker_runs_the_batch(backend):
    def noise(loader):
        return [n.tobytes() for _, n in loader]

    with make(sources.Jittery(n=12), backend, workers=1, seed=5) as a:
        first = noise(a)
        second = noise(a)
    with make(sources.Jittery(n=12), backend, workers=4, seed=5) as b:
        assert noise(b) == first
        assert noise(b) == second
    assert first != second  # epochs draw different values
    assert len(set(first)) == 12  # so do batches


def test_worker_exception_keeps_type_and_names_the_batch(backend):
    with make(sources.FailsAt(bad=(5,)), backend, workers=3) as loader:
        got = []
        with pytest.raises(KeyError, match="missing record 5") as info:
            for b in loader:
                got.append(int(b[0]))
        assert got == [0, 1, 2, 3, 4]  # everything before the failure arrived
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "source[5]" in notes and "batch 5 of epoch 0" in notes
        text = "".join(__import__("traceback").format_exception(info.value))
        assert "__getitem__" in text  # the worker's frames are kept


def test_first_failure_in_order_wins(backend):
    # Index 2 takes 0.3 s to fail; index 6 fails at once (a free worker takes it
    # while 2 sleeps), so 6 fails first in time, but 2 comes first in order.
    src = sources.FailsAt(bad=(2, 6), n=10, delay={2: 0.3})
    with make(src, backend, workers=4) as loader:
        got = []
        with pytest.raises(KeyError, match="missing record 2"):
            for b in loader:
                got.append(int(b[0]))
        assert got == [0, 1]


def test_loader_still_usable_after_a_failed_epoch(backend):
    src = sources.FailsAt(bad=(3,), n=6)
    with make(src, backend, workers=2) as loader:
        with pytest.raises(KeyError, match="missing record 3"):
            list(loader)
        src.bad = ()  # fixed between epochs (process workers get the change too)
        assert [int(b[0]) for b in loader] == list(range(6))
        assert [int(b[0]) for b in loader] == list(range(6))


def test_timeout_raises_loader_timeout(backend):
    with make(sources.Slow(sleep=2.0, n=2), backend, workers=1, timeout=0.3) as loader:
        with pytest.raises(stoker.LoaderTimeout, match="timeout=0.3"):
            next(iter(loader))


def test_close_is_idempotent_and_use_after_close_raises(backend):
    loader = make(sources.Indexed(n=4), backend, workers=2)
    assert len(list(loader)) == 4
    loader.close()
    loader.close()
    with pytest.raises(stoker.LoaderClosed):
        iter(loader)
    with pytest.raises(stoker.LoaderClosed):
        loader.load_state_dict(loader.state_dict())


def test_close_mid_epoch_stops_the_workers(backend):
    loader = make(sources.Indexed(n=200, sleep=0.005), backend, workers=3)
    it = iter(loader)
    next(it)
    loader.close()
    with pytest.raises((stoker.LoaderClosed, StopIteration)):
        next(it)


def test_epoch_hooks_run_once_per_epoch_and_workers_see_new_state(backend):
    src = sources.EpochHooks(n=10)
    with make(src, backend, workers=3) as loader:
        e0 = [b.tolist() for b in loader]
        e1 = [b.tolist() for b in loader]
        for k, _ in enumerate(loader):  # cut short: the hook still runs once
            if k == 2:
                break
        e3 = [b.tolist() for b in loader]
    assert e0 == [[i, 0] for i in range(10)]
    expected1 = np.random.default_rng(1).permutation(10).tolist()
    assert e1 == [[v, 1] for v in expected1]
    assert [g for _, g in e3] == [3] * 10
    assert src.ends == 4 and src.begins == 4


def test_state_dict_is_json_and_pickle_friendly(backend):
    import json

    with make(sources.Indexed(n=5), backend, seed=1) as loader:
        state = loader.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert pickle.loads(pickle.dumps(state)) == state


def test_new_iteration_ends_a_paused_epoch(backend):
    with make(sources.Indexed(n=6), backend, workers=2) as loader:
        paused = iter(loader)
        assert [int(next(paused)[0][0]) for _ in range(2)] == [0, 1]
        assert ids_of(list(loader)) == list(range(6))  # a whole new epoch
        assert loader.epoch == 2
        with pytest.raises(StopIteration):
            next(paused)
