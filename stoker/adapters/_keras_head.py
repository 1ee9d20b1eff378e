"""``FirstBatches``: the first ``n`` batches of a source, for ``steps=n`` evaluation.

It lives apart from the Keras modules on purpose: process workers unpickle the source
they run, which imports the module defining its class, and importing Keras (with
torch) costs each worker seconds. This module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any


class FirstBatches:
    """The first ``n`` batches of ``source`` (evaluation with ``steps=n``)."""

    def __init__(self, source: Any, n: int) -> None:
        self.source = source
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.n:
            raise IndexError(f"batch {index} is outside the first {self.n}")
        return self.source[index]
