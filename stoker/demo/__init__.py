"""``stoker demo``: the seed experiment, on real data, with no download.

scikit-learn's handwritten digits are written as PNG files to a data folder and read
back by a Sequence that waits a simulated network latency per batch; a small CNN
trains with Keras 2's ``fit_generator`` (ported onto stoker) on 1, 2, 4 and 8 thread
and process workers. The result is a table of wall time, speedup and accuracy, and a
chart of speedup against workers.

Importing this package imports nothing heavy: process workers import
``stoker.demo.digits`` to unpickle the Sequence, and should not pay for rich or
Keras. ``run_demo`` imports Keras, choosing the torch backend unless
``KERAS_BACKEND`` is set.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("stoker.demo.sweep"), name)
    raise AttributeError(f"module 'stoker.demo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
