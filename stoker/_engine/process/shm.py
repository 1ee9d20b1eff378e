"""Shared memory between process workers and the consumer: an arena, a ring of slots.

Ownership rule (every path keeps it, error paths included):

1. The consumer creates one *arena* per worker pool: an anonymous memory file
   (``memfd``; elsewhere a temporary file unlinked at creation), so there is never a
   name in ``/dev/shm`` to leak, whatever kills whom. Workers map it from an inherited
   fd. Its size is a reservation: pages exist only once written.
2. The arena is cut into *slots*, owned by the consumer's :class:`SlotRing`. The ring
   lends a slot to exactly one task when it dispatches it; the worker writes that
   task's batch into it and nothing else.
3. When the result arrives, the slot passes to a :class:`Lease`; every array of the
   batch is a view whose base chain ends at the lease. The slot returns to the ring
   only when the lease is garbage collected, i.e. once the consumer has dropped every
   array viewing it. A batch kept in a list keeps its slot, and its content.
4. A result that is discarded (an epoch cut short) or carries no arrays gives its
   slot back at once. A batch that does not fit its slot, or a task dispatched while
   the consumer itself holds every slot, goes through a *one-off* segment: a fresh
   memfd the worker creates and whose fd crosses with the result; its mapping lives
   exactly as long as the arrays that view it.
5. The ring grows up to ``cap`` slots (``max_queue_size + workers + 1``: the bound
   on batches, plus the one the training step still holds; fewer under
   ``max_queue_bytes``). When all are taken, a task waits for one only while the
   epoch still has batches in flight or undelivered (taking them frees slots);
   otherwise the consumer itself holds every slot (it keeps batches) and the task
   gets a one-off segment, so keeping batches never deadlocks.
6. Closing a pool drops the consumer's fd; the kernel frees the memory once the last
   mapping is gone (the last worker has exited and the last lease is collected).

Inside a worker, :func:`empty` and :func:`zeros` place arrays straight into the slot
of the batch being computed, so a source that fills them in place crosses with no
copy. Anywhere else they are plain numpy arrays.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import tempfile
import threading
from typing import Any, Literal

import numpy as np

# Arrays in a slot start on this boundary (a cache line; enough for any dtype).
ALIGN = 64
_PAGE = mmap.PAGESIZE
Order = Literal["C", "F"]


def align(n: int, to: int = ALIGN) -> int:
    """``n`` rounded up to a multiple of ``to``."""
    return -(-n // to) * to


def _anonymous_fd(name: str) -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name, os.MFD_CLOEXEC)
    # No memfd (macOS): a file that is unlinked the moment it exists.
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryFile(prefix=name, dir=where) as f:
        return os.dup(f.fileno())


def reservation_bytes() -> int:
    """Address space reserved for one arena: twice the machine's memory.

    Only written pages use memory, so the reservation costs nothing; a ring can never
    usefully outgrow physical memory, and what does not fit goes through one-offs.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return align(min(max(2 * total, 1 << 30), 1 << 40), 1 << 20)


class Segment:
    """One mapped memory file: its fd (None once closed) and a uint8 view of it."""

    def __init__(self, fd: int, size: int, *, own_fd: bool = True) -> None:
        self.size = size
        self.mm = mmap.mmap(fd, size)
        self.u8 = np.frombuffer(self.mm, np.uint8)
        self.address = int(self.u8.ctypes.data)
        self.fd: int | None = fd
        if not own_fd:
            self.close_fd()

    @classmethod
    def create(cls, size: int, name: str = "stoker") -> Segment:
        """A new anonymous segment of ``size`` bytes (zero-filled on first touch)."""
        fd = _anonymous_fd(name)
        try:
            os.ftruncate(fd, size)
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    def close_fd(self) -> None:
        """Drop the fd; the mapping (and the memory) lives on while referenced."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self, offset: int, size: int) -> None:
        """Give the pages of ``[offset, offset + size)`` back to the system."""
        start = align(offset, _PAGE)
        end = (offset + size) // _PAGE * _PAGE
        if end > start and hasattr(mmap, "MADV_REMOVE"):
            # A file system without hole punching keeps the pages: harmless.
            with contextlib.suppress(OSError):
                self.mm.madvise(mmap.MADV_REMOVE, start, end - start)


class Slot:
    """A range of the arena that holds one batch at a time."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size


class Lease:
    """Keeps one slot out of the ring while any array views it (rule 3).

    Arrays are built on ``numpy.asarray(lease)`` (a uint8 view of the slot whose base
    is the lease), so the lease lives exactly as long as the last of them.
    """

    __slots__ = ("__array_interface__", "_ring", "_slot")

    def __init__(self, ring: SlotRing, slot: Slot) -> None:
        self._ring = ring
        self._slot = slot
        self.__array_interface__ = {
            "data": (ring.arena.address + slot.offset, False),
            "shape": (slot.size,),
            "typestr": "|u1",
            "version": 3,
        }

    def __del__(self) -> None:
        # SimpleQueue.put is safe in __del__; at interpreter exit nothing is left.
        with contextlib.suppress(Exception):
            self._ring.freed.put(self._slot)


class _Ranges:
    """First-fit allocator of arena offsets, merging freed neighbours."""

    def __init__(self, start: int, end: int) -> None:
        self._free: list[tuple[int, int]] = [(start, end)]

    def take(self, size: int) -> int | None:
        for i, (lo, hi) in enumerate(self._free):
            if hi - lo >= size:
                self._free[i] = (lo + size, hi)
                if lo + size == hi:
                    del self._free[i]
                return lo
        return None

    def give(self, offset: int, size: int) -> None:
        free = self._free
        free.append((offset, offset + size))
        free.sort()
        merged = [free[0]]
        for lo, hi in free[1:]:
            if lo == merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self._free = merged


NO_SLOT = Slot(0, 0)  # the task gets no slot: inline pickle, or a one-off segment
WAIT = None  # no slot now, but one the engine holds comes back soon


class SlotRing:
    """The consumer's slots in one arena (rules 2 to 5); used by one thread.

    ``lend`` answers a slot, ``NO_SLOT`` or ``WAIT``; every lent slot comes back
    through ``arrived`` (then ``codec.decode`` leases it or gives it back) or
    ``discard``. Slot size starts unknown (0:
    tasks get ``NO_SLOT``) and follows the largest batch seen; smaller slots are
    retired (their pages discarded) as they come back.
    """

    def __init__(self, arena: Segment, start: int, cap: int, max_bytes: int | None):
        self.arena = arena
        self.slot_size = 0
        self._cap_slots = cap
        self._max_bytes = max_bytes
        self._ranges = _Ranges(align(start, _PAGE), arena.size)
        self._free: list[Slot] = []
        self.freed: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        self.live = 0  # slots allocated (free, lent to tasks, or leased)
        self.lent = 0  # slots lent to tasks whose result has not been decoded

    @property
    def cap(self) -> int:
        """Most slots the ring may hold at the current slot size."""
        if self._max_bytes is None or self.slot_size == 0:
            return self._cap_slots
        return max(1, min(self._cap_slots, self._max_bytes // self.slot_size))

    def set_cap(self, cap: int) -> None:
        """Most slots from now on (the budget moved); extra slots retire as they
        come back."""
        self._cap_slots = cap

    def lend(self, busy: bool) -> Slot | None:
        """A slot for the next task, ``NO_SLOT`` (use a one-off) or ``WAIT``.

        ``busy``: the epoch has batches in flight or finished but not yet taken by
        the consumer; taking them frees the slots it holds, so waiting is safe.
        """
        self._collect()
        if self.slot_size == 0:
            return NO_SLOT
        if self._free:
            slot = self._free.pop()
        elif self.live < self.cap:
            offset = self._ranges.take(self.slot_size)
            if offset is None:
                return NO_SLOT  # the reservation is full: rare, and one-offs work
            slot = Slot(offset, self.slot_size)
            self.live += 1
        elif self.lent > 0 or busy:
            return WAIT
        else:
            return NO_SLOT  # the consumer holds every slot (rule 5)
        self.lent += 1
        return slot

    def arrived(self, slot: Slot) -> None:
        """A lent slot's result arrived: ``codec.decode`` leases it or gives it back."""
        if slot is not NO_SLOT:
            self.lent -= 1

    def give_back(self, slot: Slot) -> None:
        """A slot whose content nobody views (an array-free result)."""
        if slot is not NO_SLOT:
            self._return(slot)

    def discard(self, slot: Slot) -> None:
        """Take back a lent slot: task unsent or skipped, or its result dropped."""
        self.arrived(slot)
        self.give_back(slot)

    def lease(self, slot: Slot) -> np.ndarray:
        """A uint8 view of ``slot`` that returns it to the ring once dropped."""
        return np.asarray(Lease(self, slot))

    def grow(self, need: int) -> None:
        """A batch needed ``need`` bytes of slot: size future slots to fit it."""
        if need > self.slot_size:
            grown = self.slot_size + self.slot_size // 8 if self.slot_size else 0
            self.slot_size = align(max(need, grown), _PAGE)
            keep = [s for s in self._free if s.size >= self.slot_size]
            for s in self._free:
                if s.size < self.slot_size:
                    self._retire(s)
            self._free = keep

    def _collect(self) -> None:
        freed = self.freed
        while not freed.empty():
            self._return(freed.get_nowait())

    def _return(self, slot: Slot) -> None:
        if slot.size < self.slot_size or self.live > self.cap:
            self._retire(slot)
        else:
            self._free.append(slot)

    def _retire(self, slot: Slot) -> None:
        self.live -= 1
        self.arena.discard(slot.offset, slot.size)
        self._ranges.give(slot.offset, slot.size)


class SlotWriter:
    """Worker side: the slot of the batch being computed, filled front to back.

    Attributes:
        demand: bytes asked of ``empty`` for this batch (what a slot must hold).
        missed: data addresses of ``empty`` arrays that did not fit the slot.
    """

    def __init__(self, arena: Segment | None, offset: int, size: int) -> None:
        self.arena = arena
        self.offset = offset
        self.size = size
        self.used = 0
        self.demand = 0
        self.missed: set[int] = set()
        self._lock = threading.Lock()  # a source may call empty() from its threads

    def alloc(self, nbytes: int) -> int | None:
        """Arena offset of ``nbytes`` fresh bytes in the slot, or None if full."""
        n = align(nbytes)
        with self._lock:
            if self.arena is None or self.used + n > self.size:
                return None
            offset = self.offset + self.used
            self.used += n
            return offset

    def holds(self, address: int, nbytes: int) -> bool:
        """Whether ``[address, address + nbytes)`` lies inside this slot."""
        if self.arena is None:
            return False
        start = self.arena.address + self.offset
        return start <= address and address + nbytes <= start + self.size

    def empty(self, dims: tuple[int, ...], dt: np.dtype, order: Order) -> np.ndarray:
        """An array in the slot, or a private one (remembered) when it is full."""
        count = 1
        for d in dims:
            count *= int(d)
        nbytes = count * dt.itemsize
        self.demand += align(nbytes)
        offset = self.alloc(nbytes)
        if offset is None or self.arena is None:
            out: np.ndarray = np.empty(dims, dt, order=order)
            self.missed.add(int(out.ctypes.data))
            return out
        return np.ndarray(dims, dt, buffer=self.arena.u8, offset=offset, order=order)


_writer: SlotWriter | None = None  # set by the worker loop around each source call


def set_writer(writer: SlotWriter | None) -> None:
    """Make ``writer`` the target of :func:`empty` in this process (workers only)."""
    global _writer
    _writer = writer


def empty(shape: Any, dtype: Any = float, order: Order = "C") -> np.ndarray:
    """An uninitialised array, placed in shared memory when called inside a worker.

    Inside ``source[i]`` run by a process worker, the array lives in the slot that
    will carry batch ``i`` to the consumer: fill it in place (decode into it, stack
    samples into it with ``out=``) and return it in the batch, and it crosses with no
    copy at all. Elsewhere (threads, or outside a loader) it is ``numpy.empty``.
    The array belongs to the batch being computed: do not keep it for later batches.

    Args:
        shape: the array's shape, as for ``numpy.empty``.
        dtype: its dtype (default float64, as numpy).
        order: ``"C"`` or ``"F"``.

    Returns:
        A ``numpy.ndarray`` with unspecified content.
    """
    writer = _writer
    dt = np.dtype(dtype)
    if writer is None or dt.hasobject:
        return np.empty(shape, dt, order=order)
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return writer.empty(dims, dt, order)


def zeros(shape: Any, dtype: Any = float, order: Order = "C") -> np.ndarray:
    """Like :func:`empty`, filled with zeros (``numpy.zeros`` outside a worker).

    Args:
        shape: the array's shape.
        dtype: its dtype (default float64).
        order: ``"C"`` or ``"F"``.

    Returns:
        A zero-filled ``numpy.ndarray``.
    """
    if _writer is None:
        return np.zeros(shape, dtype, order=order)
    out = empty(shape, dtype, order)
    out.fill(0)
    return out
