"""Batch sources for the conformance harness.

Module-level classes so that process workers started with spawn or forkserver can
import them by name.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time

import numpy as np

import stoker


class Indexed:
    """Batch ``i`` is ``(x, y)`` whose content encodes ``i`` and ``stoker.rng()``."""

    def __init__(self, n: int = 24, sleep: float = 0.0, shape: tuple[int, ...] = (4,)):
        self.n = n
        self.sleep = sleep
        self.shape = shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        if self.sleep:
            time.sleep(self.sleep)
        noise = stoker.rng().standard_normal(self.shape).astype(np.float32)
        return np.full(self.shape, i, dtype=np.int64), noise


class Jittery(Indexed):
    """Like Indexed, but batches finish out of order (seeded sleep per index)."""

    def __getitem__(self, i: int):
        time.sleep(random.Random(i).random() * 0.01)
        return super().__getitem__(i)


class Samples:
    """Per-sample source: sample ``i`` is a dict with an int label and a vector."""

    def __init__(self, n: int = 23):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {
            "x": np.full((3,), i, dtype=np.float32),
            "y": i,
            "r": stoker.rng().random(),
        }


class Structured:
    """Batches of every supported structure: tuples, lists, dicts, objects."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        return {
            "tuple": (np.arange(i + 1), np.float64(i)),
            "list": [np.ones((2, 2)) * i, "text", None],
            "obj": {"name": f"batch-{i}", "values": list(range(i))},
            "objarray": np.array([f"s{i}", None], dtype=object),
        }


class FailsAt:
    """Raises KeyError at the given indices, works elsewhere; ``delay`` makes some
    indices take that long first."""

    def __init__(
        self,
        bad: tuple[int, ...] = (5,),
        n: int = 12,
        sleep: float = 0.0,
        delay: dict[int, float] | None = None,
    ):
        self.bad = bad
        self.n = n
        self.sleep = sleep
        self.delay = delay or {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.sleep or i in self.delay:
            time.sleep(self.delay.get(i, self.sleep))
        if i in self.bad:
            raise KeyError(f"missing record {i}")
        return np.array([i])


class Slow:
    """Every batch takes ``sleep`` seconds (for timeouts and shutdown)."""

    def __init__(self, sleep: float = 5.0, n: int = 8):
        self.sleep = sleep
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        time.sleep(self.sleep)
        return np.array([i])


class EpochHooks:
    """A Keras-style Sequence that reshuffles its own state in on_epoch_end.

    Batch ``i`` is ``self.order[i]``; workers must see the new order each epoch.
    """

    def __init__(self, n: int = 10):
        self.n = n
        self.order = list(range(n))
        self.begins = 0
        self.ends = 0
        self.generation = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.array([self.order[i], self.generation])

    def on_epoch_begin(self) -> None:
        self.begins += 1

    def on_epoch_end(self) -> None:
        self.ends += 1
        self.generation += 1
        self.order = list(np.random.default_rng(self.generation).permutation(self.n))


class Counting:
    """Counts batches started (threads only): for the memory-bound test."""

    def __init__(self, n: int = 60, sleep: float = 0.001):
        self.n = n
        self.sleep = sleep
        self.started = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        with self.lock:
            self.started += 1
        time.sleep(self.sleep)
        return np.array([i])


class LegacyRandom:
    """Calls the global generators, as old Keras code does."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        return np.array([np.random.rand(), random.random()])


class Draw:
    """Batch ``i`` is what the worker's *global* generators give, and its pid."""

    def __init__(self, n: int = 6, sleep: float = 0.05):
        self.n = n
        self.sleep = sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        time.sleep(self.sleep)  # every worker gets a batch before any gets two
        return np.array([np.random.randint(2**31), random.getrandbits(31), os.getpid()])


class TorchDraw(Draw):
    """Batch ``i`` is a draw from the worker's global torch generator, and its pid."""

    def __getitem__(self, i: int):
        import torch

        time.sleep(self.sleep)  # every worker gets a batch before any gets two
        return np.array([int(torch.randint(2**31, ()).item()), os.getpid()])


class Record(dict):
    """A dict subclass with an attribute of its own, as users write them."""

    def __init__(self, *args, source: str = "?", **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source


class Mapped:
    """Per-sample source whose samples are a dict subclass, an OrderedDict and a
    defaultdict: collation must keep each mapping's type."""

    def __init__(self, n: int = 10):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        extra: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
        extra["i"] = [i]
        return Record(
            x=np.full((2,), i, np.float32),
            meta=collections.OrderedDict(b=i, a=-i),
            extra=extra,
            source="disk",
        )


class GrowsEachEpoch(Indexed):
    """A Keras-style Sequence whose ``on_epoch_end`` adds a batch."""

    def on_epoch_end(self) -> None:
        self.n += 1
