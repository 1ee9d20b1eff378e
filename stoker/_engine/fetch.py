"""Turning a task key into a batch: ``source[i]``, or samples stacked into a batch.

A :class:`Fetcher` is what every backend runs in its workers; it is picklable when
the source is, so process workers receive it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stoker._engine import seeding
from stoker._engine.plan import Key


def collate(samples: list[Any]) -> Any:
    """Stack a list of samples into one batch, keeping their structure.

    Arrays and numbers are stacked with ``numpy.stack`` along a new first axis;
    tuples, lists and dicts are collated field by field; anything else is returned as
    a list of the samples' values.
    """
    first = samples[0]
    if isinstance(first, (np.ndarray, int, float, complex, np.generic)):
        if isinstance(first, bool):
            return np.asarray(samples)
        return np.stack([np.asarray(s) for s in samples])
    if isinstance(first, Mapping):
        return {k: collate([s[k] for s in samples]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # namedtuple
        return type(first)(*(collate(list(f)) for f in zip(*samples, strict=True)))
    if isinstance(first, (tuple, list)):
        return type(first)(collate(list(f)) for f in zip(*samples, strict=True))
    return list(samples)


def nbytes(batch: Any) -> int:
    """Bytes of array data in a batch (arrays inside tuples, lists and dicts)."""
    if isinstance(batch, np.ndarray):
        return batch.nbytes
    if isinstance(batch, (tuple, list)):
        return sum(nbytes(b) for b in batch)
    if isinstance(batch, dict):
        return sum(nbytes(b) for b in batch.values())
    return 0


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
        return collate(samples)
