"""What Keras' and PyTorch's own loader tests expect of a loader (issue 11).

Each test is one behaviour that the peers' suites (Keras' ``PyDataset`` /
``OrderedEnqueuer`` tests, torch's ``test_dataloader.py``) check and that stoker
got wrong before: named after the peer's case where there is one.
"""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest

import stoker
from stoker._tree import collate
from tests import sources
from tests.harness import make

pytestmark = pytest.mark.timeout(60)

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


# -- 1. every worker process has its own global random state
#       (torch: test_numpy_gen_state)
@pytest.mark.parametrize("method", PROCESS_METHODS)
@pytest.mark.parametrize("seed", [None, 5])
def test_process_workers_draw_distinct_global_random_numbers(method, seed):
    np.random.rand()  # the parent used np.random: a forked child copies its state
    random.random()
    with stoker.Loader(
        sources.Draw(6),
        workers=3,
        use_multiprocessing=True,
        start_method=method,
        seed=seed,
        reseed_globals=False,  # the per-batch reseed (rule 4) would hide the bug
        timeout=30,
    ) as loader:
        batches = list(loader)
    first_draw: dict[int, tuple[int, int]] = {}
    for numpy_draw, random_draw, pid in batches:
        first_draw.setdefault(int(pid), (int(numpy_draw), int(random_draw)))
    assert len(first_draw) >= 2, "the batches should have spread over the workers"
    numpy_firsts = [d[0] for d in first_draw.values()]
    random_firsts = [d[1] for d in first_draw.values()]
    assert len(set(numpy_firsts)) == len(numpy_firsts), first_draw
    assert len(set(random_firsts)) == len(random_firsts), first_draw
    assert len({int(b[0]) for b in batches}) == len(batches)


def test_forked_workers_draw_distinct_torch_random_numbers():
    """torch's own generator too (torch seeds it in each DataLoader worker)."""
    torch = pytest.importorskip("torch")
    torch.rand(1)  # the parent used torch's generator: a forked child copies it
    with stoker.Loader(
        sources.TorchDraw(6),
        workers=3,
        use_multiprocessing=True,
        start_method="fork",
        seed=5,
        timeout=30,
    ) as loader:
        batches = list(loader)
    first_draw: dict[int, int] = {}
    for draw, pid in batches:
        first_draw.setdefault(int(pid), int(draw))
    assert len(first_draw) >= 2, "the batches should have spread over the workers"
    assert len(set(first_draw.values())) == len(first_draw), first_draw
    assert len({int(b[0]) for b in batches}) == len(batches)


# -- 2. uneven generator streams: every item once per pass (torch: IterableDataset
#       with uneven shards, test_iterable_style_dataset)
SIZES = [2, 4, 20]


def uneven(w, n):
    return ((w, k) for k in range(SIZES[w]))


def one_pass():
    return [(w, k) for w in range(3) for k in range(SIZES[w])]


def test_uneven_streams_deliver_each_item_once_per_pass():
    with stoker.Loader.from_generator(uneven, steps_per_epoch=26, workers=3) as ld:
        got = list(ld)
        assert sorted(got) == sorted(one_pass())
        # Round-robin, worker 0 first; an ended stream drops out of the turn.
        turn = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (1, 2), (2, 2), (1, 3)]
        assert got[:9] == turn
        assert got[9:] == [(2, k) for k in range(3, 20)]
        assert list(ld) == got  # the next epoch is the next pass, in the same order


def test_the_issues_reproduction_no_longer_repeats_zero():
    with stoker.Loader.from_generator(
        lambda w, n: iter(range(SIZES[w])), steps_per_epoch=26, workers=3
    ) as ld:
        values = sorted(ld)
    assert values.count(0) == 3  # one per stream, one pass
    assert 19 in values


def test_epochs_are_windows_over_the_passes():
    with stoker.Loader.from_generator(uneven, steps_per_epoch=10, workers=3) as ld:
        epochs = [list(ld) for _ in range(6)]
    flat = [item for e in epochs for item in e]
    assert sorted(flat[:26]) == sorted(one_pass())  # pass 1 whole before pass 2
    assert sorted(flat[26:52]) == sorted(one_pass())
    assert flat[26:52] == flat[:26]


def test_stream_order_does_not_depend_on_timing():
    def jittery(w, n):
        rnd = random.Random()
        for k in range(SIZES[w]):
            if rnd.random() < 0.3:
                import time

                time.sleep(0.002)
            yield (w, k)

    runs = []
    for workers_budget in (1, 8):
        with stoker.Loader.from_generator(
            jittery, steps_per_epoch=26, workers=3, max_queue_size=workers_budget
        ) as ld:
            runs.append(list(ld))
    assert runs[0] == runs[1]


def test_stream_resume_mid_pass_delivers_exactly_the_rest():
    with stoker.Loader.from_generator(uneven, steps_per_epoch=10, workers=3) as ld:
        list(ld)
        it = iter(ld)
        head = [next(it) for _ in range(7)]
        state = ld.state_dict()
        rest = list(it)
        after = list(ld)
    with stoker.Loader.from_generator(uneven, steps_per_epoch=10, workers=3) as again:
        again.load_state_dict(state)
        assert list(again) == rest
        assert list(again) == after
    assert len(head + rest) == 10


def test_streams_that_yield_nothing_at_all_raise():
    with stoker.Loader.from_generator(lambda w, n: iter(()), steps_per_epoch=3) as ld:
        with pytest.raises(stoker.GeneratorExhausted, match="without yielding"):
            list(ld)


def test_an_empty_shard_is_allowed():
    def shards(w, n):
        return iter([] if w == 1 else [w] * 2)

    with stoker.Loader.from_generator(shards, steps_per_epoch=4, workers=3) as ld:
        assert list(ld) == [0, 2, 0, 2]


# -- 3. the length is read again at every epoch (Keras: PyDataset.num_batches per
#       epoch; torch: len(dataset) per iterator)
def test_length_is_read_at_every_epoch_start(backend):
    data = [np.full(4, i, np.int64) for i in range(4)]
    with make(data, backend, workers=2) as loader:
        assert len(list(loader)) == 4
        data.append(np.full(4, 4, np.int64))
        assert len(loader) == 5
        got = list(loader)
        assert [int(b[0]) for b in got] == [0, 1, 2, 3, 4]
        assert loader.stats.summary()["length_changes"] == [
            {"epoch": 1, "from": 4, "to": 5}
        ]


def test_a_sequence_that_changes_its_batches_in_on_epoch_end(backend):
    with make(sources.GrowsEachEpoch(n=3), backend, workers=2) as loader:
        lengths = [len(list(loader)) for _ in range(3)]
    assert lengths == [3, 4, 5]


def test_resume_refuses_a_state_whose_length_no_longer_matches():
    with stoker.Loader(sources.Indexed(n=6), seed=1) as first:
        next(iter(first))
        state = first.state_dict()
    with stoker.Loader(sources.Indexed(n=7), seed=1) as second:
        with pytest.raises(stoker.ConfigError, match="length=6 .* length=7"):
            second.load_state_dict(state)


def test_resume_after_a_length_change_replays_the_same_batches():
    data = [np.full(2, i, np.int64) for i in range(5)]
    with stoker.Loader(data, shuffle=True, seed=4, workers=2) as first:
        list(first)
        data.append(np.full(2, 5, np.int64))
        list(first)
        it = iter(first)
        next(it), next(it)
        state = first.state_dict()
        rest = [int(b[0]) for b in it]
    with stoker.Loader(list(data), shuffle=True, seed=4, workers=3) as second:
        second.load_state_dict(state)
        assert [int(b[0]) for b in second] == rest


# -- 4. collation keeps mapping types (torch: test_default_collate_mapping_keep_type)
def test_collation_keeps_mapping_types(backend):
    with make(sources.Mapped(10), backend, workers=2, batch_size=4) as loader:
        batches = list(loader)
    first = batches[0]
    assert type(first) is sources.Record and first.source == "disk"
    assert type(first["meta"]) is collections.OrderedDict
    assert list(first["meta"]) == ["b", "a"]
    assert type(first["extra"]) is collections.defaultdict
    assert first["extra"].default_factory is list
    assert first["x"].shape == (4, 2)
    assert [len(b["meta"]["b"]) for b in batches] == [4, 4, 2]


def test_collate_keeps_sequence_types_and_names_a_ragged_sample():
    Point = collections.namedtuple("Point", "x y")

    class Row(list):
        pass

    batch = collate([Point(np.zeros(2), 1), Point(np.ones(2), 2)])
    assert type(batch) is Point and batch.y.tolist() == [1, 2]
    rows = collate([Row([1, 2]), Row([3, 4])])
    assert type(rows) is Row and rows[0].tolist() == [1, 3]
    with pytest.raises(ValueError, match="sample 2 of the batch has 1 fields"):
        collate([(1, 2), (3, 4), (5,)])
    with pytest.raises(ValueError, match="sample 1 .* no field 'y'"):
        collate([{"x": 1, "y": 2}, {"x": 3}])


# -- 5. a Keras PyDataset with neither __len__ nor num_batches (Keras:
#       test_py_dataset without num_batches)
@pytest.mark.keras
def test_pydataset_without_a_length_gets_a_config_error():
    keras = pytest.importorskip("keras")

    class NoLength(keras.utils.PyDataset):
        def __getitem__(self, i):
            return np.zeros(2)

    with pytest.raises(stoker.ConfigError, match="num_batches property"):
        stoker.Loader(NoLength())


def test_a_float_length_says_what_it_returned():
    class FloatLength:
        def __len__(self):
            return 10.0

        def __getitem__(self, i):
            return i

    with pytest.raises(TypeError):
        len(FloatLength())  # Python itself refuses it; stoker must say more
    with pytest.raises(stoker.ConfigError, match=r"returned 10.0 \(a float\)"):
        stoker.Loader(FloatLength())
