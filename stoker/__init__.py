"""stoker: keep a training loop fed.

``stoker.Loader`` runs a batch source on thread or process workers and delivers the
batches in order, through a bounded queue, deterministically for a seed.
"""

import typing

if typing.TYPE_CHECKING:
    # `stoker.track(...)` is a call; at run time stoker.track is also the package of
    # the tracker's queries (a callable module), which a type checker cannot model.
    from stoker.track._run import track
else:
    from stoker import track
from stoker._engine.process.shm import empty, zeros
from stoker._engine.seeding import rng
from stoker._errors import (
    ConfigError,
    GeneratorExhausted,
    LoaderClosed,
    LoaderTimeout,
    SerializationError,
    StokerError,
    StoreError,
    WorkerCrashed,
    WorkerError,
)
from stoker._loader import Loader
from stoker._ray_options import RayOptions
from stoker._sharding import shard_from_env
from stoker._types import BatchEvent, Observer, observe_all

if typing.TYPE_CHECKING:  # type checkers see param's signature; it loads on first use
    from stoker.track._sweeps import param

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> object:
    # stoker.param lives with the tracker's sweep records; importing it on first use
    # keeps the tracker's SQLite, subprocess and git machinery out of `import stoker`.
    if name == "param":
        from stoker.track._sweeps import param as value

        globals()[name] = value
        return value
    raise AttributeError(f"module 'stoker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"param"})


__all__ = [
    "BatchEvent",
    "ConfigError",
    "GeneratorExhausted",
    "Loader",
    "LoaderClosed",
    "LoaderTimeout",
    "Observer",
    "RayOptions",
    "SerializationError",
    "StokerError",
    "StoreError",
    "WorkerCrashed",
    "WorkerError",
    "empty",
    "observe_all",
    "param",
    "rng",
    "shard_from_env",
    "track",
    "zeros",
]
