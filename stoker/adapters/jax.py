"""stoker for JAX: batches placed on the devices ahead of the step.

``device_prefetch(loader, size=2, sharding=None)`` wraps a ``stoker.Loader``: each
``for`` over it is one epoch of the loader, whose batches arrive as ``jax.Array``
leaves placed by ``jax.device_put`` on a background stage that keeps ``size`` of them
ready ahead of the training step (the stage's rules: ``_prefetch``). Without
``sharding`` they go to the default device; with ``sharding="local"`` every array is
split along its first axis over this process's devices, the data-parallel layout
``jax.jit`` steps expect; any ``jax.sharding.Sharding`` or ``jax.Device`` is used as
given, for every array of the batch.

Leaves that are not numeric arrays (strings, object arrays, Python values) pass as
they are. Structure is kept: JAX's pytrees (tuples, named tuples, lists, dicts).

Why a stage although ``device_put`` is asynchronous: taking a batch from the loader
and issuing its transfer still cost the step's thread time; here they overlap the
step, and the number of batches held on the device is bounded by ``size``.

One process per host: with ``jax.process_count() > 1`` each host feeds its own
devices (``shard=stoker.shard_from_env()`` gives each host its part); building global
arrays over several hosts is left to ``jax.make_array_from_process_local_data``.

Importing this module without JAX raises an ``ImportError`` that names
``pip install 'stoker[jax]'``.
"""

from __future__ import annotations

try:
    import jax
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if exc.name not in ("jax", "jaxlib"):
        raise
    raise ImportError(
        "stoker.adapters.jax needs JAX: pip install 'stoker[jax]'"
    ) from exc

from collections.abc import Iterator
from typing import Any

import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

import stoker
from stoker.adapters._staged import StagedEpochs, StagedLoader

# dtype kinds with no jax.Array type: bytes, str, object, void, datetime, timedelta
_NO_ARRAY_KINDS = frozenset("SUOVMm")


def local_batch_sharding() -> NamedSharding:
    """Arrays split along their first axis over this process's devices."""
    mesh = Mesh(np.array(jax.local_devices()), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch"))


def _target(sharding: Any) -> Any:
    if sharding is None:
        return None
    if isinstance(sharding, str):
        if sharding != "local":
            raise stoker.ConfigError(
                f"sharding={sharding!r}: the only name is 'local' (split the batch "
                "over this process's devices); otherwise give a jax.sharding.Sharding"
                " or a jax.Device"
            )
        return local_batch_sharding()
    if isinstance(sharding, (Sharding, jax.Device)):
        return sharding
    raise stoker.ConfigError(
        f"sharding of type {type(sharding).__name__}: give None (default device), "
        "'local', a jax.sharding.Sharding or a jax.Device"
    )


class _Put:
    """The stage's transfer: every numeric array of the batch, device_put."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __call__(self, batch: Any) -> tuple[Any, None]:
        return jax.tree_util.tree_map(self._leaf, batch), None

    def _leaf(self, leaf: Any) -> Any:
        if not isinstance(leaf, (np.ndarray, np.generic)):
            return leaf
        if leaf.dtype.kind in _NO_ARRAY_KINDS:
            return leaf
        try:
            return jax.device_put(leaf, self.target)
        except ValueError as exc:
            if self.target is None or np.ndim(leaf) == 0:
                raise
            count = len(self.target.device_set)
            raise stoker.ConfigError(
                f"an array of shape {np.shape(leaf)} cannot be split over {count} "
                f"devices ({exc}). Make the batch size a multiple of {count} "
                "(stoker.Loader(..., batch_size=..., drop_last=True) drops a short "
                "last batch)"
            ) from exc


class DevicePrefetch(StagedLoader):
    """A ``stoker.Loader`` whose batches arrive on the devices; see the module doc.

    Build it with :func:`device_prefetch`. Each ``for`` is one epoch; ``len()``,
    ``state_dict()``/``load_state_dict()`` and ``close()`` are the loader's, with the
    state covering exactly the batches the loop has taken.
    """

    def __init__(self, loader: stoker.Loader, size: int, sharding: Any) -> None:
        if not isinstance(loader, stoker.Loader):
            raise stoker.ConfigError(
                f"device_prefetch takes a stoker.Loader, got {type(loader).__name__}:"
                " wrap the source first, e.g. "
                "device_prefetch(stoker.Loader(source, workers=8))"
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise stoker.ConfigError(
                f"size={size!r}: give the number of batches to keep on the devices "
                "ahead of the step, a whole number >= 1 (2 is usual)"
            )
        self.loader = loader
        self.size = size
        self.sharding = _target(sharding)
        self._staged = StagedEpochs(loader, _Put(self.sharding), size, "jax")

    def __iter__(self) -> Iterator[Any]:
        """One epoch, on the devices. A new pass ends a paused one."""
        return self._staged.start()

    def __repr__(self) -> str:
        return (
            f"<stoker DevicePrefetch {len(self)} batches, size={self.size}, "
            f"sharding={self.sharding}, over {self.loader!r}>"
        )


def device_prefetch(
    loader: stoker.Loader, size: int = 2, sharding: Any = None
) -> DevicePrefetch:
    """Batches of ``loader`` as ``jax.Array``s, ``size`` of them placed ahead.

    Args:
        loader: a ``stoker.Loader``; ``close()`` on the result (or ``with``) closes
            it too.
        size: batches kept on the devices ahead of the step (>= 1).
        sharding: None (the default device), ``"local"`` (split every array along
            its first axis over ``jax.local_devices()``), a
            ``jax.sharding.Sharding`` or a ``jax.Device``.

    Returns:
        An iterable with ``len()``; each ``for`` over it is one epoch.

    Raises:
        ConfigError: a bad argument; during iteration, an array whose first axis
            cannot be split over the devices.
    """
    return DevicePrefetch(loader, size, sharding)


__all__ = ["DevicePrefetch", "device_prefetch", "local_batch_sharding"]
