"""issue 17: batch sources for the Ray backend tests.

Module-level classes, so that Ray workers import them by name.
"""

from __future__ import annotations

import os
import pathlib
import threading
import time

import numpy as np


def node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


class WhereAmI:
    """Batch ``i``: ``(i, node id, pid)`` after ``sleep`` seconds."""

    def __init__(self, n: int = 20, sleep: float = 0.0):
        self.n = n
        self.sleep = sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        time.sleep(self.sleep)
        return np.array([i]), node_id(), os.getpid()


class DiesAt:
    """``os._exit(3)`` at index ``bad``; with ``marker``, only the first time."""

    def __init__(self, bad: int = 3, n: int = 8, marker: str | None = None):
        self.bad = bad
        self.n = n
        self.marker = marker

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i == self.bad:
            if self.marker is None:
                os._exit(3)
            path = pathlib.Path(self.marker)
            if not path.exists():
                path.write_text("died once")
                os._exit(3)
        return np.array([i])


class HoldsLock:
    """A source with a lock attribute: it cannot be pickled."""

    def __init__(self):
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int):
        return np.array([i])


class ReturnsLock:
    """Batch ``i`` is a lock: it cannot leave the worker."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return threading.Lock()


class Big:
    """Batches of ``mb`` megabytes of uint8 filled with ``i % 251``."""

    def __init__(self, n: int = 8, mb: float = 9.6):
        self.n = n
        self.size = int(mb * 1e6)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full(self.size, i % 251, np.uint8)


class Logged:
    """Batch ``i`` after ``sleep`` seconds; each call appends ``i`` to ``log``."""

    def __init__(self, log: str, n: int = 40, sleep: float = 0.05):
        self.log = log
        self.n = n
        self.sleep = sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        with open(self.log, "a") as f:
            f.write(f"{i}\n")
        time.sleep(self.sleep)
        return np.array([i])


class LockAt:
    """Cheap batches ``np.full(2, i)``, except batch ``bad``: a lock, which cannot
    leave the worker (in the middle of a run of batches sent in one call)."""

    def __init__(self, bad: int, n: int) -> None:
        self.bad, self.n = bad, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        import numpy as np

        return threading.Lock() if i == self.bad else np.full(2, i)
