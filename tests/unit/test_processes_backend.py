"""The process backend beyond the conformance harness: transfer, memory, lifecycle."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

import stoker
from stoker._engine.process import shm
from tests import sources_proc

pytestmark = pytest.mark.timeout(60)
MB = 1 << 20


def loader(source, method="fork", **options):
    options.setdefault("workers", 2)
    options.setdefault("timeout", 30)
    return stoker.Loader(
        source, use_multiprocessing=True, start_method=method, **options
    )


def backend_of(ld):
    return ld._feed.backend


def in_shared_memory(array: Any) -> bool:
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # numpy's frombuffer keeps a memoryview
        return in_shared_memory(base.obj)
    return isinstance(base, (shm.Lease, __import__("mmap").mmap))


def test_big_arrays_arrive_as_views_of_shared_memory():
    with loader(sources_proc.Arrays(n=8), max_queue_size=2) as ld:
        for _ in range(2):
            for i, (x, y) in enumerate(ld):
                assert (x == i % 251).all() and y.tolist() == [i] * 8
                assert in_shared_memory(x)  # 64 KB: out of band, zero-copy
                assert not in_shared_memory(y)  # 64 bytes: inside the pickle
        ring = backend_of(ld)._pool.ring
        assert ring.slot_size >= x.nbytes and ring.live <= 2 + 2 + 1


def test_arrays_from_stoker_empty_are_written_in_place():
    with loader(sources_proc.Filled(n=10, shape=(256, 1024)), max_queue_size=3) as ld:
        placed = []
        for _ in range(2):
            for i, (x, z, was_placed) in enumerate(ld):
                assert (x == i % 251).all() and not z.any()
                assert in_shared_memory(x)
                placed.append(was_placed)
    # The first batches run before the slot size is known; then every one is placed.
    assert all(placed[10:]) and placed.count(False) <= 5


def test_a_kept_batch_keeps_its_content_and_nothing_deadlocks():
    with loader(sources_proc.Arrays(n=30, shape=(32, 1024)), max_queue_size=1) as ld:
        kept = [b for _ in range(3) for b in ld]
        assert len(kept) == 90
        for k, (x, y) in enumerate(kept):
            i = k % 30
            assert (x == i % 251).all() and y[0] == i, f"batch {k} was overwritten"
        ring = backend_of(ld)._pool.ring
        assert ring.live <= 1 + 2 + 1  # the rest went through one-off segments
        del kept, x, y
        gc.collect()
        assert [int(y[0]) for _, y in ld] == list(range(30))


def test_batches_that_outgrow_the_slots_still_arrive_intact():
    with loader(sources_proc.Growing(n=8, shape=(16, 1024))) as ld:
        for _ in range(2):
            for i, (x, _) in enumerate(ld):
                assert x.shape == (16 * (i + 1), 1024) and (x == i % 251).all()
        assert backend_of(ld)._pool.ring.slot_size >= 16 * 8 * 1024


def test_max_queue_bytes_caps_shared_memory():
    src = sources_proc.Arrays(n=20, shape=(MB,))
    with loader(src, max_queue_size=8, max_queue_bytes=3 * MB + 4096) as ld:
        for _ in range(2):
            assert [int(y[0]) for _, y in ld] == list(range(20))
        ring = backend_of(ld)._pool.ring
        assert ring.live * ring.slot_size <= 3 * MB + 4096 * 3


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_persist_and_the_source_crosses_once(method):
    src = sources_proc.CountsPickles(n=6)
    type(src).pickled = 0
    with loader(src, method, workers=2) as ld:
        first = {int(b[1]) for b in ld}
        second = {int(b[1]) for b in ld}
        pids = set(backend_of(ld).pids)
    assert first <= pids and second <= pids and len(pids) == 2
    assert type(src).pickled == 1


def test_epoch_end_reshuffle_reaches_the_workers_without_resending_big_data():
    src = sources_proc.Reshuffles(n=16, data_bytes=8 * MB)
    with loader(src, workers=2) as ld:
        e0 = [b.tolist() for b in ld]
        e1 = [b.tolist() for b in ld]
        sent = list(backend_of(ld).update_bytes)
    assert e0 == [[i, 0] for i in range(16)]
    expected = np.arange(16)
    np.random.default_rng(1).shuffle(expected)
    assert e1 == [[v, 1] for v in expected.tolist()]
    assert len(sent) == 1 and sent[0] < 10_000


def test_global_random_is_reseeded_per_batch_when_seeded():
    runs = []
    for workers in (1, 3):
        with loader(sources_proc.Legacy(n=9), workers=workers, seed=11) as ld:
            runs.append([[int(b[0]) for b in ld] for _ in range(2)])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]


def test_picky_exception_and_system_exit_keep_their_types():
    with loader(sources_proc.RaisesAt(n=4)) as ld:
        for _ in range(2):  # the loader survives a failed epoch
            with pytest.raises(sources_proc.Picky) as info:
                list(ld)
            assert info.value.code == 7
            assert any("source[1]" in n for n in info.value.__notes__)
    with loader(sources_proc.RaisesAt(n=4, exit=True)) as ld:
        with pytest.raises(SystemExit) as exited:
            list(ld)
        assert exited.value.code == 5


def test_a_batch_that_cannot_be_pickled_names_its_index_and_part():
    with loader(sources_proc.BadBatch(n=4)) as ld:
        with pytest.raises(stoker.SerializationError) as info:
            list(ld)
    text = str(info.value)
    assert "batch 2" in text and "source[2]" in text and "batch['handle']" in text
