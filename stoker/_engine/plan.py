"""Which batch goes where: the index plan of every epoch.

The data is seen as an endless stream of *passes*; pass ``p`` visits every batch of
this shard once, in the order ``seeding.pass_order(seed, p, n)`` (or in index order
without shuffle). Epoch ``e`` is stream positions ``[e*S, (e+1)*S)`` where ``S`` is
``steps_per_epoch`` or the length of a pass. So an epoch shorter than the data takes
the next ``S`` batches, and the one after continues there: every batch is used once
per pass, none is skipped or repeated, whatever the epoch length.

Sharding splits each pass's batch list with ``[index::count]`` after the (shared)
permutation: shards are disjoint and their union is the pass. Shards differ by at
most one batch; ``drop_last`` evens them out by dropping that remainder.

The length of the source is read again at every epoch start. When it changed, the
plan is rebuilt from that epoch on (``first_epoch``): epoch ``e`` is then stream
positions ``[(e - first_epoch)*S, ...)`` of a new stream whose passes are drawn
from ``(seed, first_epoch, p)``, so a resume that knows ``first_epoch`` replays it.

A task key is what a worker needs to compute the batch: for a batch source the index
``i`` of ``source[i]``; for a per-sample source (``batch_size``) an int64 array of
sample indices.
"""

from __future__ import annotations

import functools
from typing import Union

import numpy as np

from stoker._engine import seeding

Key = Union[int, np.ndarray]  # noqa: UP007 - a runtime alias on Python 3.10


class Plan:
    """The epoch-to-keys mapping of one loader; pure, cheap to rebuild anywhere."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        shuffle: bool,
        batch_size: int | None = None,
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
        shard: tuple[int, int] | None = None,
        first_epoch: int = 0,
    ) -> None:
        self.n = n
        self.first_epoch = first_epoch
        self.seed = seed
        self.shuffle = shuffle
        self.batch_size = batch_size
        if batch_size is None:
            batches = n
        else:
            batches = n // batch_size if drop_last else -(-n // batch_size)
        index, count = shard or (0, 1)
        ids = np.arange(batches, dtype=np.int64)[index::count]
        if shard is not None and drop_last:
            ids = ids[: batches // count]
        self._shard_ids = ids
        self.pass_length = len(ids)
        self.epoch_length = steps_per_epoch or self.pass_length

    @functools.lru_cache(maxsize=2)  # noqa: B019 - a plan lives as long as its loader
    def _order(self, pass_index: int) -> np.ndarray:
        if self.shuffle:
            return seeding.pass_order(self.seed, pass_index, self.n, self.first_epoch)
        return np.arange(self.n, dtype=np.int64)

    def keys(self, epoch: int) -> list[Key]:
        """The keys of every position of ``epoch``, in delivery order."""
        if self.pass_length == 0:
            return []
        start = (epoch - self.first_epoch) * self.epoch_length
        out: list[Key] = []
        for g in range(start, start + self.epoch_length):
            p, j = divmod(g, self.pass_length)
            b = int(self._shard_ids[j])
            order = self._order(p)
            if self.batch_size is None:
                out.append(int(order[b]))
            else:
                bs = self.batch_size
                out.append(order[b * bs : (b + 1) * bs])
        return out
