"""The pieces of the process backend that need no process: ring, codec, errors."""

from __future__ import annotations

import gc
import pickle
import signal
import threading
from typing import Any

import numpy as np
import pytest

import stoker
from stoker._engine import crash, pickling, tracebacks
from stoker._engine.process import codec, resync, shm
from tests import sources_proc

MB = 1 << 20


@pytest.fixture
def arena():
    seg = shm.Segment.create(64 * MB)
    yield seg
    seg.close_fd()


def lease_of(array: np.ndarray) -> object:
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
        while isinstance(base, np.ndarray):
            base = base.base
    return base


def lent(ring: shm.SlotRing) -> shm.Slot:
    """A slot the ring must have (the test has made sure of it)."""
    slot = ring.lend(False)
    assert slot is not None
    return slot


def test_ring_hands_out_no_slot_until_it_knows_the_batch_size(arena):
    ring = shm.SlotRing(arena, 4096, cap=3, max_bytes=None)
    assert ring.lend(False) is shm.NO_SLOT
    ring.grow(MB + 1)
    assert ring.slot_size == MB + 4096  # page-rounded
    a, b, c = lent(ring), lent(ring), lent(ring)
    assert len({a.offset, b.offset, c.offset}) == 3 and ring.live == 3
    assert ring.lend(False) is shm.WAIT  # all lent to tasks: a result brings one back
    ring.discard(a)
    assert ring.lend(False) is a


def test_a_slot_returns_only_when_every_view_is_gone(arena):
    ring = shm.SlotRing(arena, 4096, cap=1, max_bytes=None)
    ring.grow(MB)
    slot = lent(ring)
    ring.arrived(slot)
    flat = ring.lease(slot)
    view = flat[10:20].view(np.uint16)
    del flat
    gc.collect()
    assert ring.lend(False) is shm.NO_SLOT  # the consumer holds the only slot
    del view
    gc.collect()
    assert ring.lend(False) is slot


def test_max_queue_bytes_caps_the_ring(arena):
    ring = shm.SlotRing(arena, 4096, cap=10, max_bytes=3 * MB)
    ring.grow(MB)
    slots = [ring.lend(False) for _ in range(4)]
    assert slots[3] is shm.WAIT and ring.live == 3


def test_outgrown_slots_are_retired_and_their_range_reused(arena):
    ring = shm.SlotRing(arena, 4096, cap=2, max_bytes=None)
    ring.grow(MB)
    small = lent(ring)
    ring.arrived(small)
    ring.grow(3 * MB)
    ring.give_back(small)  # too small now: retired, not reused
    assert ring.live == 0
    big = lent(ring)
    assert big.size >= 3 * MB and big.offset == small.offset  # the range merged back


def test_empty_and_zeros_are_plain_numpy_outside_a_worker():
    a = stoker_empty((3, 4), np.float32)
    z = stoker_zeros((2,), np.int16)
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.flags.owndata
    assert z.tolist() == [0, 0] and z.flags.owndata


def stoker_empty(*args):
    return getattr(stoker, "empty", shm.empty)(*args)


def stoker_zeros(*args):
    return getattr(stoker, "zeros", shm.zeros)(*args)


def _worker_slot(arena, size):
    writer = shm.SlotWriter(arena, 4096, size)
    shm.set_writer(writer)
    return writer


def test_arrays_from_empty_cross_without_a_copy(arena):
    writer = _worker_slot(arena, 4 * MB)
    try:
        x = shm.empty((256, 1024), np.uint8)
        x[...] = 7
        z = shm.zeros(1000, np.float64)
    finally:
        shm.set_writer(None)
    assert writer.holds(x.ctypes.data, x.nbytes) and not z.any()
    stream, places, need, one_off = codec.encode((x, {"z": z}, "label"), writer)
    assert one_off is None and isinstance(stream, bytes)
    assert places[0] == (codec.IN_SLOT, 4096, x.nbytes)  # where empty() put it
    assert need == shm.align(x.nbytes) + shm.align(z.nbytes)
    ring = shm.SlotRing(arena, 4096, cap=2, max_bytes=None)
    out_x, out_z, label = (lambda b: (b[0], b[1]["z"], b[2]))(
        codec.decode(stream, places, ring, shm.Slot(4096, 4 * MB), None)
    )
    assert label == "label" and (out_x == 7).all() and out_z.shape == (1000,)
    assert isinstance(lease_of(out_x), shm.Lease)
    assert out_x.ctypes.data == arena.address + 4096  # the very same bytes


def test_a_batch_bigger_than_its_slot_goes_through_a_one_off(arena):
    writer = _worker_slot(arena, MB)
    shm.set_writer(None)
    big = np.arange(3 * MB // 8, dtype=np.int64)
    small = np.ones(MB // 2, np.uint8)
    stream, places, need, one_off = codec.encode([small, big], writer)
    assert one_off is not None
    assert [p[0] for p in places] == [codec.IN_SLOT, codec.IN_ONE_OFF]
    assert need == shm.align(small.nbytes) + shm.align(big.nbytes)
    # The consumer maps the one-off from its own fd, as a received one would be.
    assert one_off.fd is not None
    received = shm.Segment(one_off.fd, one_off.size, own_fd=False)
    ring = shm.SlotRing(arena, 4096, cap=2, max_bytes=None)
    out = codec.decode(stream, places, ring, shm.Slot(4096, MB), received)
    assert np.array_equal(out[0], small) and np.array_equal(out[1], big)


def test_object_arrays_and_big_pickles_still_cross(arena):
    writer = _worker_slot(arena, 4 * MB)
    shm.set_writer(None)
    batch = {"names": np.array(["a", None], dtype=object), "text": "x" * 200_000}
    stream, places, _, one_off = codec.encode(batch, writer)
    assert one_off is None and stream[0] == codec.IN_SLOT and places == []
    ring = shm.SlotRing(arena, 4096, cap=2, max_bytes=None)
    ring.grow(4 * MB)
    slot = lent(ring)
    ring.arrived(slot)
    out = codec.decode(stream, places, ring, shm.Slot(4096, 4 * MB), None)
    assert out["names"].tolist() == ["a", None] and out["text"] == "x" * 200_000


def test_user_exceptions_keep_their_type_even_with_a_picky_constructor():
    try:
        raise sources_proc.Picky(7, "bad record")
    except sources_proc.Picky as exc:
        packed = tracebacks.pack(exc)
    rebuilt = tracebacks.unpack(pickle.loads(pickle.dumps(packed)))
    assert type(rebuilt) is sources_proc.Picky
    assert str(rebuilt) == "error 7: bad record" and rebuilt.code == 7
    assert "raise sources_proc.Picky" in str(rebuilt.__cause__)


def test_an_exception_that_cannot_be_rebuilt_becomes_a_worker_error():
    class Local(Exception):  # not importable by name
        pass

    packed = tracebacks.pack(Local("gone"))
    rebuilt = tracebacks.unpack(packed)
    assert isinstance(rebuilt, stoker.WorkerError)
    assert "Local" in str(rebuilt) and "gone" in str(rebuilt)


@pytest.mark.parametrize(
    ("exitcode", "words"),
    [
        (-signal.SIGKILL, "out-of-memory"),
        (-signal.SIGBUS, "shared memory is full"),
        (-signal.SIGSEGV, "native code"),
        (3, "exited with code 3"),
    ],
)
def test_crash_messages_name_the_likely_cause(exitcode, words):
    err = crash.worker_crashed(1, 4242, exitcode, 5, 17, 2)
    assert isinstance(err, stoker.WorkerCrashed)
    assert (err.worker, err.index, err.exitcode) == (1, 17, exitcode)
    assert words in str(err) and "batch 5" in str(err) and "pid 4242" in str(err)


def test_the_unpicklable_part_is_named_by_its_path():
    src = sources_proc.WithLock()
    where, _ = pickling.culprit(src, "source")
    assert where.startswith("source.reader.lock (a _thread.lock")
    with pytest.raises(stoker.SerializationError, match=r"source\.reader\.lock"):
        pickling.dumps_source(src, src, "spawn")


def test_resync_sends_only_what_changed():
    src = sources_proc.Reshuffles(n=16, data_bytes=4 * MB)
    sync = resync.SourceSync(src)
    assert sync.changes(src) is None
    src.on_epoch_end()  # shuffles `indices` in place, bumps `epochs`
    payload = sync.changes(src)
    assert payload is not None and len(payload) < 10_000  # not the 4 MB `data`
    copy = sources_proc.Reshuffles(n=16, data_bytes=16)
    resync.apply(copy, payload)
    assert copy.indices.tolist() == src.indices.tolist() and copy.epochs == 1
    assert sync.changes(src) is None
    del src.epochs
    src.lock = threading.Lock()  # type: ignore[attr-defined]
    with pytest.raises(stoker.SerializationError, match=r"source\.lock"):
        sync.changes(src)


def test_a_read_only_array_is_not_checksummed_but_its_replacement_is_seen():
    src = sources_proc.Reshuffles(n=4, data_bytes=1024)
    src.data.flags.writeable = False
    sync = resync.SourceSync(src)
    assert sync.changes(src) is None
    src.data = np.zeros(8, np.uint8)
    assert sync.changes(src) is not None
