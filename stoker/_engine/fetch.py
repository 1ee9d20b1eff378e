"""Turning a task key into a batch: ``source[i]``, or samples stacked into a batch.

A :class:`Fetcher` is what every backend runs in its workers; it is picklable when
the source is, so process workers receive it once.
"""

from __future__ import annotations

from typing import Any

from stoker._engine import seeding
from stoker._engine.plan import Key
from stoker._engine.process import shm
from stoker._tree import collate


class Fetcher:
    """Computes the batch for one key, with the seeding context set around the call."""

    def __init__(self, source: Any, batch_size: int | None, seed: int) -> None:
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.reseed_globals = False  # process workers switch it on (seeding rule 4)

    def __call__(self, key: Key, epoch: int) -> Any:
        """Return the batch for ``key`` in ``epoch``; user exceptions propagate."""
        seed = self.seed
        if self.batch_size is None:
            index = int(key)
            seeding.set_context(seed, epoch, index)
            if self.reseed_globals:
                seeding.reseed_globals(seed, epoch, index)
            try:
                return self.source[index]
            finally:
                seeding.clear_context()
        samples = []
        try:
            for s in key.tolist():  # type: ignore[union-attr]
                seeding.set_context(seed, epoch, s)
                if self.reseed_globals:
                    seeding.reseed_globals(seed, epoch, s)
                try:
                    samples.append(self.source[s])
                except Exception as exc:
                    exc.add_note(f"stoker: raised by sample source[{s}]")
                    raise
        finally:
            seeding.clear_context()
        return collate(samples, shm.empty)
