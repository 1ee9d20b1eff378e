"""A batch across the process boundary: pickle protocol 5, array data out of band.

The worker pickles the batch with ``buffer_callback``: numpy hands over the data of
every contiguous non-object array as a buffer instead of copying it into the pickle
stream. Each buffer is then placed in shared memory:

* already in the task's slot (the array came from ``stoker.empty``): no copy;
* else copied into the slot, if it fits;
* else copied into a one-off segment made for this batch (its fd crosses too).

Only the small pickle stream and a list of ``(segment, offset, size)`` cross the
socket. The consumer unpickles with views of those ranges as the buffers, so its
arrays are zero-copy views of shared memory, kept alive by the slot's lease (see
``shm.py`` for the ownership rule). Object arrays, non-contiguous arrays and
anything that is not an array travel inside the pickle stream, as before. Buffers
smaller than ``_OUT_OF_BAND_MIN_BYTES`` stay in the stream too: copying a few bytes
costs less than describing them.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from stoker._engine.process.messages import Place
from stoker._engine.process.shm import (
    ALIGN,
    NO_SLOT,
    Segment,
    Slot,
    SlotRing,
    SlotWriter,
    align,
)
from stoker._engine.process.wire import MAX_INLINE_BYTES

_OUT_OF_BAND_MIN_BYTES = 16 * 1024
IN_SLOT = 0
IN_ONE_OFF = 1


def _address(buf: memoryview) -> int:
    return int(np.frombuffer(buf, np.uint8).ctypes.data)


def encode(
    batch: Any, writer: SlotWriter
) -> tuple[bytes | Place, list[Place], int, Segment | None]:
    """Worker side: ``(stream, buffers, need, one_off)`` for ``batch``.

    ``writer`` is the task's slot. ``need`` is the slot size that would have held
    everything (the consumer grows its slots to it); ``one_off`` is the segment made
    for what did not fit, or None. Pickling errors propagate.
    """
    raw: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> bool:
        view = buf.raw()
        if view.nbytes < _OUT_OF_BAND_MIN_BYTES:
            return True  # in band
        raw.append(view)
        return False

    data = pickle.dumps(batch, protocol=5, buffer_callback=keep)
    pieces = [(v, _address(v)) for v in raw]
    if len(data) > MAX_INLINE_BYTES:
        pieces.append((memoryview(data), 0))
    need = writer.demand
    places: list[Place] = []
    spill: list[tuple[int, memoryview]] = []  # (index in places, view) for a one-off
    arena = writer.arena
    for view, addr in pieces:
        n = view.nbytes
        if addr and writer.holds(addr, n):
            assert arena is not None
            places.append((IN_SLOT, addr - arena.address, n))
            continue
        if addr not in writer.missed:
            need += align(n)  # an empty() that missed the slot is counted already
        offset = writer.alloc(n)
        if offset is not None:
            assert arena is not None
            arena.u8[offset : offset + n] = np.frombuffer(view, np.uint8)
            places.append((IN_SLOT, offset, n))
        else:
            spill.append((len(places), view))
            places.append((IN_ONE_OFF, 0, n))
    one_off = None
    if spill:
        total = sum(align(v.nbytes) for _, v in spill)
        one_off = Segment.create(max(total, ALIGN), "stoker-batch")
        pos = 0
        for i, view in spill:
            n = view.nbytes
            one_off.u8[pos : pos + n] = np.frombuffer(view, np.uint8)
            places[i] = (IN_ONE_OFF, pos, n)
            pos += align(n)
    stream: bytes | Place = places.pop() if len(data) > MAX_INLINE_BYTES else data
    return stream, places, need, one_off


def decode(
    stream: bytes | Place,
    places: list[Place],
    ring: SlotRing,
    slot: Slot,
    one_off: Segment | None,
) -> Any:
    """Consumer side: the batch, as views of the slot (leased) and the one-off.

    The slot is leased if any buffer lies in it and given back otherwise; either way
    the caller must not touch ``slot`` afterwards.
    """
    uses_slot = isinstance(stream, tuple) and stream[0] == IN_SLOT
    uses_slot = uses_slot or any(p[0] == IN_SLOT for p in places)
    if not uses_slot:
        ring.give_back(slot)
        flat = None
    else:
        flat = ring.lease(slot)
    base = slot.offset

    def view(place: Place) -> np.ndarray:
        where, offset, n = place
        if where == IN_SLOT:
            assert flat is not None and slot is not NO_SLOT
            return flat[offset - base : offset - base + n]
        assert one_off is not None
        return one_off.u8[offset : offset + n]

    buffers = [view(p) for p in places]
    data = view(stream).data if isinstance(stream, tuple) else stream
    return pickle.loads(data, buffers=buffers)
