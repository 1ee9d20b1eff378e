"""stoker: keep a training loop fed.

``stoker.Loader`` runs a batch source on thread or process workers and delivers the
batches in order, through a bounded queue, deterministically for a seed.
"""

from stoker import track
from stoker._engine.seeding import rng
from stoker._engine.shm import empty, zeros
from stoker._errors import (
    ConfigError,
    LoaderClosed,
    LoaderTimeout,
    SerializationError,
    StokerError,
    StoreError,
    WorkerCrashed,
    WorkerError,
)
from stoker._loader import Loader
from stoker._options import RayOptions
from stoker._sharding import shard_from_env
from stoker._types import BatchEvent, Observer, observe_all

__version__ = "0.1.0.dev0"

__all__ = [
    "BatchEvent",
    "ConfigError",
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
    "rng",
    "shard_from_env",
    "track",
    "zeros",
]
