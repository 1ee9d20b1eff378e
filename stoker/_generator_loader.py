"""``Loader.from_generator``: a loader whose batches come from generator streams.

It shares the Loader's lifecycle, stats, observers and delivery; what differs is the
plan (a stream cursor instead of an index plan) and the backend
(``_engine.generators``). See ``Loader.from_generator`` for the semantics.
"""

from __future__ import annotations

import inspect
from typing import Any

from stoker._engine.generators import GeneratorEpochRun, Streams
from stoker._engine.run import EpochRun, Result
from stoker._errors import ConfigError
from stoker._loader import Loader
from stoker._options import LoaderOptions
from stoker._types import Observer


def _is_iterator(obj: Any) -> bool:
    return inspect.isgenerator(obj) or hasattr(obj, "__next__")


class GeneratorLoader(Loader):
    """A :class:`Loader` over ``factory(worker, workers)`` streams or one generator."""

    def __init__(
        self,
        factory: Any,
        *,
        steps_per_epoch: int,
        workers: int,
        max_queue_size: int,
        timeout: float | None,
        observers: list[Observer] | None,
    ) -> None:
        if steps_per_epoch is None:
            raise ConfigError(
                "from_generator needs steps_per_epoch: a generator has no length, so "
                "stoker must be told how many items make an epoch"
            )
        single = factory if _is_iterator(factory) else None
        if single is None and not callable(factory):
            raise ConfigError(
                f"from_generator got {type(factory).__name__}: pass a generator, or a "
                "function called as factory(worker_index, num_workers) that returns one"
            )
        if single is not None:
            workers = 1  # one generator runs on one thread (see from_generator)
        self.options = LoaderOptions(
            workers=workers,
            max_queue_size=max_queue_size,
            steps_per_epoch=steps_per_epoch,
            timeout=timeout,
        )
        self._streams = Streams(
            None if single is not None else factory, single, workers
        )
        self._extra_observers = list(observers or [])
        self._setup(factory)

    def _init_length(self, source: Any) -> int:
        self._cursor = 0  # stream items delivered before the current epoch
        return self.options.steps_per_epoch or 0

    def __len__(self) -> int:
        return self.options.steps_per_epoch or 0

    def _kind(self) -> str:
        return "generator"

    def state_dict(self) -> dict[str, Any]:
        """As ``Loader.state_dict``; resuming replays the streams from their start.

        A resumed generator loader calls the factory again and skips the items already
        delivered, so the factory must yield the same items each time it is called.
        """
        state = super().state_dict()
        state["cursor"] = self._cursor + len(self._done)
        state["workers"] = self.options.workers
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` (the factory must be deterministic)."""
        if self._streams.factory is None:
            raise ConfigError(
                "a loader over a single generator object cannot resume: the "
                "generator cannot be replayed. Pass a factory to from_generator to "
                "make it resumable"
            )
        if state.get("workers") != self.options.workers:
            raise ConfigError(
                f"the state was saved with workers={state.get('workers')!r}; generator "
                "streams are per worker, so resume with the same number of workers"
            )
        if self._cursor or self._epoch:
            raise ConfigError("load_state_dict() must be called on a new loader")
        super().load_state_dict(state)
        cursor = int(state["cursor"])
        # An epoch's positions are stream positions [cursor, cursor + S); resume
        # continues at the first one not delivered (delivered_after is empty: generator
        # loaders always deliver in order).
        self._cursor = cursor - len(self._done)
        w_count = self.options.workers
        streams = self._streams
        for w in range(w_count):
            streams.skip[w] = len(range(w, cursor, w_count))
            streams.next_g[w] = w + w_count * streams.skip[w]

    def _start_run(self, epoch: int, positions: list[int]) -> EpochRun:
        opts = self.options
        start = self._cursor
        first = start + (positions[0] if positions else len(self))
        return GeneratorEpochRun(
            self._streams,
            start,
            first,
            start + len(self),
            opts.max_queue_size + opts.workers,
            self.id,
        )

    def _keep_undelivered(self, run: EpochRun, buffer: dict[int, Result]) -> None:
        base = self._cursor
        delivered = len(self._done)
        for pos, result in buffer.items():
            self._streams.pending[base + pos] = result
        # Positions delivered this epoch are consumed for good; the next epoch starts
        # at the first position not delivered.
        self._cursor = base + delivered
