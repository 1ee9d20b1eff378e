"""Batch sources for the process-backend tests.

Module-level classes, so that workers started with spawn or forkserver can import
them by name.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from stoker._engine.process import shm


class Arrays:
    """Batch ``i``: ``(x, y)`` with ``x`` filled with ``i % 251`` and ``y == i``."""

    def __init__(self, n: int = 12, shape: tuple[int, ...] = (64, 1024)):
        self.n = n
        self.shape = shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full(self.shape, i % 251, np.uint8), np.full(8, i, np.int64)


class Growing(Arrays):
    """Each batch is bigger than the one before: every slot size is outgrown."""

    def __getitem__(self, i: int):
        rows = self.shape[0] * (i + 1)
        return np.full((rows, *self.shape[1:]), i % 251, np.uint8), np.full(8, i)


class Filled(Arrays):
    """Fills ``stoker.empty``/``zeros`` arrays in place and says if they were in shm.

    Batch ``i`` is ``(x, z, placed)``: ``placed`` tells whether both arrays were
    placed in the worker's current slot.
    """

    def __getitem__(self, i: int):
        x = shm.empty(self.shape, np.uint8)
        x[...] = i % 251
        z = shm.zeros((16, 1024), np.float32)
        writer = shm._writer
        placed = writer is not None and all(
            writer.holds(a.ctypes.data, a.nbytes) for a in (x, z)
        )
        return x, z, placed


class DiesAt(Arrays):
    """Dies at index ``at``: ``how`` is ``exit`` (os._exit(3)) or a signal name."""

    def __init__(self, at: int, how: str, n: int = 12):
        super().__init__(n, (4,))
        self.at = at
        self.how = how

    def __getitem__(self, i: int):
        if i == self.at:
            time.sleep(0.05)  # let the earlier batches reach the consumer first
            if self.how == "exit":
                os._exit(3)
            os.kill(os.getpid(), getattr(signal, self.how))
        return super().__getitem__(i)


class WithLock(Arrays):
    """Holds a lock, which cannot be pickled (fine with fork, not with spawn)."""

    def __init__(self, n: int = 4):
        super().__init__(n, (4,))
        self.reader = Reader()


class Reader:
    def __init__(self) -> None:
        self.lock = threading.Lock()


class BadBatch(Arrays):
    """Batch 2 holds a lock: it cannot cross back to the consumer."""

    def __getitem__(self, i: int):
        if i == 2:
            return {"x": np.zeros(3), "handle": threading.Lock()}
        return super().__getitem__(i)


class Picky(Exception):
    """An exception whose constructor cannot be replayed from its args."""

    def __init__(self, code: int, why: str):
        super().__init__(f"error {code}: {why}")
        self.code = code


class RaisesAt(Arrays):
    """Raises ``Picky`` (or ``SystemExit`` with ``exit=True``) at index 1."""

    def __init__(self, n: int = 4, exit: bool = False):
        super().__init__(n, (4,))
        self.exit = exit

    def __getitem__(self, i: int):
        if i == 1:
            raise SystemExit(5) if self.exit else Picky(7, "bad record")
        return super().__getitem__(i)


class Reshuffles:
    """A Keras-style Sequence: ``on_epoch_end`` shuffles ``indices`` in place.

    ``data`` is a large attribute that never changes: it must not be resent.
    """

    def __init__(self, n: int = 16, data_bytes: int = 8 << 20):
        self.n = n
        self.indices = np.arange(n)
        self.data = np.ones(data_bytes, np.uint8)
        self.epochs = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.array([self.indices[i], self.epochs])

    def on_epoch_end(self) -> None:
        self.epochs += 1
        np.random.default_rng(self.epochs).shuffle(self.indices)


class CountsPickles(Arrays):
    """Counts how often the consumer pickles it (``__getstate__`` runs there)."""

    pickled = 0

    def __getstate__(self):
        type(self).pickled += 1
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.pid = os.getpid()

    def __getitem__(self, i: int):
        # Slow enough that the consumer waits and starts every worker (pool.py).
        time.sleep(0.05)
        return np.array([i, getattr(self, "pid", -1)])


class Pids(Arrays):
    """Batch ``i`` is ``[i, pid of the worker that computed it]``."""

    def __getitem__(self, i: int):
        time.sleep(0.002)
        return np.array([i, os.getpid()])


class Legacy(Arrays):
    """Draws from the global generators, as old Keras code does."""

    def __getitem__(self, i: int):
        return np.array([np.random.randint(1 << 30), i])


class DiesOnce(Arrays):
    """Dies like ``DiesAt`` the first time it reaches ``at``; a file remembers it."""

    def __init__(self, at: int, how: str, marker: str, n: int = 12):
        super().__init__(n, (4,))
        self.at = at
        self.how = how
        self.marker = marker

    def __getitem__(self, i: int):
        if i == self.at and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            return DiesAt(self.at, self.how, self.n)[i]
        return super().__getitem__(i)


class TorchThreads(Arrays):
    """Batch ``i`` is the intra-op thread count torch has in the worker."""

    def __getitem__(self, i):
        import torch

        return np.array([torch.get_num_threads()])
