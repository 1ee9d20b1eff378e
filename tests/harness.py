"""The conformance harness: one suite, run on every backend.

``BACKENDS`` lists the keyword arguments that select a backend; the process entries
skip while the process backend is not importable. Tests take the ``backend`` fixture
(see conftest) and build loaders with ``make(source, backend, **options)``.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from typing import Any

import numpy as np
import pytest

import stoker


def _have_processes() -> bool:
    return importlib.util.find_spec("stoker._engine.process.backend") is not None


_needs_processes = pytest.mark.skipif(
    not _have_processes(), reason="the process backend is not built yet"
)


def _process(method: str) -> Any:
    marks = [_needs_processes]
    if method not in multiprocessing.get_all_start_methods():
        marks.append(pytest.mark.skip(reason=f"{method} is not available here"))
    return pytest.param(
        {"use_multiprocessing": True, "start_method": method},
        id=f"process-{method}",
        marks=marks,
    )


BACKENDS = [
    pytest.param({"use_multiprocessing": False}, id="thread"),
    _process("fork"),
    _process("forkserver"),
    _process("spawn"),
    # issue 17: the session's Ray cluster is started by the `backend` fixture.
    pytest.param(
        {"backend": "ray"},
        id="ray",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("ray") is None, reason="ray is not installed"
        ),
    ),
]


def make(source: Any, backend: dict[str, Any], **options: Any) -> stoker.Loader:
    """A loader on ``backend`` with a short timeout so that a hang fails fast."""
    options.setdefault("timeout", 30)
    return stoker.Loader(source, **backend, **options)


def ids_of(batches: list[Any]) -> list[int]:
    """The index each ``tests.sources.Indexed`` batch encodes."""
    return [int(x[0]) for x, _ in batches]


def as_bytes(batch: Any) -> bytes:
    """Every array byte of a batch, in structure order (for bit-identity checks)."""
    if isinstance(batch, np.ndarray):
        return batch.tobytes()
    if isinstance(batch, (tuple, list)):
        return b"".join(as_bytes(b) for b in batch)
    if isinstance(batch, dict):
        return b"".join(as_bytes(batch[k]) for k in sorted(batch))
    return repr(batch).encode()


def epochs_bytes(loader: stoker.Loader, epochs: int) -> list[list[bytes]]:
    """The bytes of every batch of ``epochs`` epochs."""
    return [[as_bytes(b) for b in loader] for _ in range(epochs)]
