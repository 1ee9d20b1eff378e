"""``shard_from_env()``: this host's ``(index, count)`` for data-parallel training.

Read in this order, the first that answers wins:

1. ``torch.distributed``, when torch is already imported and the process group is
   initialised: ``(get_rank(), get_world_size())``.
2. JAX, when jax is already imported and runs more than one process:
   ``(jax.process_index(), jax.process_count())``.
3. Environment variables set by the usual launchers: ``RANK``/``WORLD_SIZE``
   (torchrun, accelerate, DeepSpeed), ``OMPI_COMM_WORLD_RANK``/``OMPI_COMM_WORLD_SIZE``
   (Open MPI), ``PMI_RANK``/``PMI_SIZE`` (MPICH, Intel MPI), ``SLURM_PROCID``/
   ``SLURM_NTASKS`` (Slurm ``srun``).
4. None: a single host.

Frameworks are never imported here: importing torch or jax just to ask would cost
seconds and start their runtimes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from stoker._errors import ConfigError

_ENV_PAIRS = (
    ("RANK", "WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
)


def _from_torch() -> tuple[int, int] | None:
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch else None
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return int(dist.get_rank()), int(dist.get_world_size())


def _from_jax() -> tuple[int, int] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    count = int(jax.process_count())
    return (int(jax.process_index()), count) if count > 1 else None


def _from_env(env: Mapping[str, str]) -> tuple[int, int] | None:
    for rank_var, size_var in _ENV_PAIRS:
        if rank_var in env and size_var in env:
            try:
                rank, size = int(env[rank_var]), int(env[size_var])
            except ValueError:
                raise ConfigError(
                    f"{rank_var}={env[rank_var]!r} and {size_var}={env[size_var]!r} "
                    "must be whole numbers; fix the launcher's environment or pass "
                    "shard=(index, count) yourself"
                ) from None
            if not 0 <= rank < size:
                raise ConfigError(
                    f"{rank_var}={rank} is not within {size_var}={size}: expected "
                    "0 <= rank < world size"
                )
            return rank, size
    return None


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """This process's ``(index, count)`` for ``Loader(shard=...)``, or None.

    Args:
        env: the environment to read (default ``os.environ``); frameworks are only
            asked when ``env`` is not given.

    Returns:
        ``(rank, world_size)`` from the first source that knows (see the module
        docstring), or None when this is a single process.

    Raises:
        ConfigError: the environment variables are malformed.
    """
    if env is None:
        found = _from_torch() or _from_jax()
        if found is not None:
            return found
        env = os.environ
    found = _from_env(env)
    if found is not None and found[1] == 1:
        return None
    return found
