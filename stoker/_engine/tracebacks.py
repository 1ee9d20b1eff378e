"""A worker's exception, rebuilt in the consumer with its type and its traceback.

The worker formats the traceback (the frames exist only there) and sends the
exception itself when it survives a pickle round trip. Exceptions whose constructor
cannot be replayed from ``args`` (a common bug in user exception classes) are rebuilt
without calling ``__init__``: same class, same ``args``, same attributes. Only a class
the consumer cannot import at all degrades to a :class:`WorkerError` naming it.

The consumer raises the rebuilt exception with the worker's traceback attached as
``__cause__``, the way ``concurrent.futures`` does, so the printed traceback reads:
the worker's frames, then "The above exception was the direct cause of", then the
consumer's frames.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

from stoker._errors import WorkerError


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _new(cls: type[BaseException], args: tuple[Any, ...], state: Any) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


def _round_trips(payload: Any) -> bytes | None:
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)
    except Exception:
        return None
    return data


def pack(exc: BaseException) -> tuple[str, bytes, str, str]:
    """Worker side: ``(how, data, type name, traceback text)`` for ``exc``."""
    tb = "".join(traceback.format_exception(exc))
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    data = _round_trips(exc)
    if data is not None:
        return "pickle", data, name, tb
    state = getattr(exc, "__dict__", None) or None
    for candidate in (state, None):
        data = _round_trips((type(exc), exc.args, candidate))
        if data is not None:
            return "parts", data, name, tb
    return "text", str(exc).encode(), name, tb


def unpack(packed: tuple[str, bytes, str, str]) -> BaseException:
    """Consumer side: the exception, of its own type where possible."""
    how, data, name, tb = packed
    exc: BaseException | None = None
    try:
        if how == "pickle":
            exc = pickle.loads(data)
        elif how == "parts":
            exc = _new(*pickle.loads(data))
    except Exception:
        exc = None
    if exc is None:
        message = data.decode(errors="replace") if how == "text" else ""
        exc = WorkerError(
            f"a worker raised {name}: {message} (the exception could not be rebuilt "
            "in this process; its traceback follows as the cause)"
        )
    exc.__cause__ = RemoteTraceback(f'\n"""\n{tb.rstrip()}\n"""')
    return exc
