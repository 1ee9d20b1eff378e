"""Every exception stoker raises, in one place.

The hierarchy::

    StokerError
    ├── ConfigError (also ValueError) bad options; says the value and the fix
    ├── WorkerError
    │   ├── WorkerCrashed             a worker died without raising; exit code, index
    │   └── SerializationError        source or batch cannot cross to/from a process
    ├── GeneratorExhausted            a generator source ran out mid-epoch
    ├── LoaderTimeout (also TimeoutError)
    ├── LoaderClosed (also RuntimeError)
    └── StoreError                    tracking store problems

Exceptions raised by the user's own ``source[i]`` are never wrapped: they reach the
consumer with their own type, the worker's traceback and a note naming the batch.
"""

from __future__ import annotations


class StokerError(Exception):
    """Base class of every error stoker raises itself."""


class ConfigError(StokerError, ValueError):
    """An option has a value stoker cannot use; the message names the fix."""


class WorkerError(StokerError):
    """A worker failed in a way that is not the user's own exception."""


class WorkerCrashed(WorkerError):
    """A worker died without raising: a signal, ``os._exit`` or an out-of-memory kill.

    Attributes:
        worker: index of the worker that died.
        index: the batch it was computing, or None if it was idle.
        exitcode: the process exit code; negative for a signal (``-9`` is SIGKILL).
    """

    def __init__(
        self,
        message: str,
        *,
        worker: int | None = None,
        index: int | None = None,
        exitcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.worker = worker
        self.index = index
        self.exitcode = exitcode


class SerializationError(WorkerError):
    """A source or a batch cannot be pickled across the process boundary."""


class GeneratorExhausted(StokerError):
    """A generator source ran out before the epoch's ``steps_per_epoch``."""


class LoaderTimeout(StokerError, TimeoutError):
    """No batch arrived within the loader's ``timeout``."""


class LoaderClosed(StokerError, RuntimeError):
    """The loader was used after ``close()``."""


class StoreError(StokerError):
    """The tracking store cannot be opened, read or written."""


__all__ = [
    "ConfigError",
    "GeneratorExhausted",
    "LoaderClosed",
    "LoaderTimeout",
    "SerializationError",
    "StokerError",
    "StoreError",
    "WorkerCrashed",
    "WorkerError",
]
