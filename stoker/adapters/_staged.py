"""Epochs of a ``stoker.Loader`` run through a prefetch stage, and their state.

Rule: a stage holds batches the training loop has not taken yet, so the loader's own
``state_dict()`` (which counts what it handed to the stage) would skip them on a
resume. The state given out here covers exactly the batches the loop has taken:

- an ordered indexed loader delivers the positions not done yet in increasing order,
  so the state is computed from the epoch's starting state and the count taken;
- any other loader (unordered, generator) is asked for its state on the stage thread
  right after each batch, and the snapshot of the last batch taken is given out.

One stage per epoch: starting a pass ends the previous one (as ``iter(loader)`` does
for a paused loop), and the stage is held only weakly, so a loop that breaks or
raises frees it (and its thread) at once.

Framework-free: the torch and JAX adapters give it their transfer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, TypeVar

import stoker
from stoker.adapters._prefetch import Prefetcher

_S = TypeVar("_S", bound="StagedLoader")


def consumed_state(start: dict[str, Any], taken: int) -> dict[str, Any]:
    """An ordered indexed loader's state once ``taken`` more batches were used.

    The form is the loader's own: ``position`` counts the positions done from the
    start of the epoch, ``delivered_after`` lists the others done.
    """
    length = int(start["epoch_length"])
    done = set(range(int(start["position"]))) | set(start["delivered_after"])
    remaining = (p for p in range(length) if p not in done)
    done.update(islice(remaining, taken))
    prefix = 0
    while prefix in done:
        prefix += 1
    after = sorted(p for p in done if p > prefix)
    return {**start, "position": prefix, "delivered_after": after}


class StagedEpochs:
    """Runs each pass over ``loader`` through a :class:`Prefetcher`.

    Args:
        loader: the loader.
        transfer: the stage's per-batch work, ``batch -> (batch, extra)``.
        depth: batches kept ready ahead of the step.
        kind: names the thread (``<loader id>-<kind>-prefetch``).
        finish: the consumer's per-batch work, ``(batch, extra) -> batch``.
    """

    def __init__(
        self,
        loader: stoker.Loader,
        transfer: Callable[[Any], tuple[Any, Any]],
        depth: int,
        kind: str,
        finish: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.loader = loader
        self._transfer = transfer
        self._depth = depth
        self._kind = kind
        self._finish = finish
        self._stage: weakref.ref[Prefetcher] | None = None
        self._start: dict[str, Any] = {}
        self._computable = False

    def start(self) -> Iterator[Any]:
        """A new pass (one epoch); ends the previous pass first."""
        self.end()
        batches = iter(self.loader)  # raises LoaderClosed after close()
        self._start = self.loader.state_dict()
        self._computable = (
            self._start.get("kind") == "indexed" and self.loader.options.ordered
        )
        stage = Prefetcher(
            batches,
            self._transfer,
            self._depth,
            name=f"{self.loader.id}-{self._kind}-prefetch",
            finish=self._finish,
            snapshot=None if self._computable else self.loader.state_dict,
        )
        self._stage = weakref.ref(stage)
        return stage

    def live(self) -> Prefetcher | None:
        """The pass in progress, if any."""
        stage = self._stage() if self._stage is not None else None
        return stage if stage is not None and not stage.done else None

    def state_dict(self) -> dict[str, Any]:
        """The loader's state covering exactly the batches taken (module docstring)."""
        stage = self.live()
        if stage is None:
            return self.loader.state_dict()
        if self._computable:
            return consumed_state(self._start, stage.taken)
        return stage.last_snapshot if stage.taken else dict(self._start)

    def end(self) -> None:
        """Stop the pass in progress (its thread ends the loader's epoch)."""
        stage = self._stage() if self._stage is not None else None
        self._stage = None
        if stage is not None:
            stage.close()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """End the pass in progress, then resume the loader from ``state``."""
        self.end()
        self.loader.load_state_dict(state)

    def close(self) -> None:
        """End the pass in progress and close the loader; idempotent."""
        try:
            self.end()
        finally:
            self.loader.close()


class StagedLoader:
    """What a framework adapter over a ``stoker.Loader`` and its stage shares.

    ``len()``, the state covering the batches the loop has taken, ``close()`` (the
    stage, then the loader) and ``with``; the torch and JAX adapters add their
    transfer, ``__iter__`` and options.
    """

    loader: stoker.Loader
    _staged: StagedEpochs

    def __len__(self) -> int:
        """Batches per epoch: ``len(loader)`` (this shard's, with ``shard=``)."""
        return len(self.loader)

    def state_dict(self) -> dict[str, Any]:
        """The loader's state, covering exactly the batches the loop has taken."""
        return self._staged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` (see ``stoker.Loader.load_state_dict``)."""
        self._staged.load_state_dict(state)

    def close(self) -> None:
        """Stop the stage and close the loader; idempotent."""
        self._staged.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
