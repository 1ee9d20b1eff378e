"""Pickling what must cross to a process, and naming the part that cannot.

"cannot pickle '_thread.lock' object" does not say where the lock is. When pickling
fails, :func:`culprit` walks the object (attributes, items, elements; a few levels
deep) and returns the path of the smallest part that still fails, e.g.
``source.reader._lock (a _thread.lock)``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from stoker._errors import SerializationError

_MAX_DEPTH = 6
_MAX_CHILDREN = 200  # per container: a million-element list is not searched whole


def _fails(value: Any) -> BaseException | None:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return exc
    return None


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_CHILDREN:
                return
            yield f"{path}[{k!r}]", v
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            if i >= _MAX_CHILDREN:
                return
            yield f"{path}[{i}]", v
    else:
        state = getattr(value, "__dict__", None)
        if isinstance(state, dict):
            for k, v in state.items():
                yield f"{path}.{k}", v
        for name in getattr(type(value), "__slots__", ()):
            if isinstance(name, str) and hasattr(value, name):
                yield f"{path}.{name}", getattr(value, name)


def culprit(value: Any, path: str) -> tuple[str, BaseException] | None:
    """``(path, error)`` of the deepest part of ``value`` that cannot be pickled."""
    error = _fails(value)
    if error is None:
        return None
    for _ in range(_MAX_DEPTH):
        for child_path, child in _children(value, path):
            child_error = _fails(child)
            if child_error is not None:
                value, path, error = child, child_path, child_error
                break
        else:
            break
    return f"{path} (a {type(value).__module__}.{type(value).__qualname__})", error


def describe(value: Any, path: str) -> str:
    """What cannot be pickled in ``value`` and why, in one line."""
    found = culprit(value, path)
    if found is None:
        return f"{path} could not be pickled"
    where, error = found
    return f"{where} cannot be pickled ({type(error).__name__}: {error})"


def dumps_source(runner: Any, source: Any, start_method: str) -> bytes:
    """Pickle ``runner`` (which holds ``source``), or say what in the source cannot.

    Raises:
        SerializationError: some attribute of the source cannot be pickled.
    """
    try:
        return pickle.dumps(runner, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        what = describe(source, "source")
        raise SerializationError(
            f"{what}. With start_method={start_method!r} the source is pickled once to "
            "reach each worker process. Make that attribute picklable (open files, "
            "connections and locks lazily inside __getitem__, or define __getstate__), "
            "or use start_method='fork' on Linux, or threads "
            "(use_multiprocessing=False)."
        ) from exc
