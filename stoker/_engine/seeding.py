"""Every seed stoker uses comes from here.

Rules (they are what makes a run reproducible whatever the worker count):

1. A loader has one root ``seed``. When the user gives none, one is drawn from the OS
   once, at construction, and kept in ``state_dict()`` so a resume replays it.
2. The order of pass ``p`` (one pass over the data; an epoch unless
   ``steps_per_epoch`` cuts passes differently) is a permutation drawn from
   ``(seed, ORDER, p)``. It does not depend on workers, backend or shard: every host of
   a sharded job computes the same permutation and takes its own slice.
3. ``stoker.rng()`` inside ``source[i]`` is a numpy Generator seeded from
   ``(seed, BATCH, epoch, i)``; for a per-sample source (``batch_size``), ``i`` is the
   sample index. Which worker, thread or process runs ``i`` does not matter.
4. With processes and ``reseed_globals`` (on when a seed is given), the global
   ``random`` and ``numpy.random`` generators of the worker are reseeded before each
   ``source[i]`` from ``(seed, GLOBALS, epoch, i)``, so legacy code that calls
   ``np.random.rand()`` is deterministic too. Threads share those global generators
   between workers, so there the order of calls decides the values: use
   ``stoker.rng()`` instead.
5. Every process worker, when it starts, seeds its global ``random`` and
   ``numpy.random`` generators (and torch's, when the program imported torch) from
   ``(seed, WORKER, pool generation, worker index)``. Seeded or not, no two workers
   share a state: a forked child would otherwise continue the parent's stream, and
   every worker would apply the same "random" augmentation (torch's DataLoader
   seeds its workers from a base seed plus the worker id for the same reason). The
   seed of an unseeded loader is drawn from the OS (rule 1), so these differ from
   run to run too. With ``reseed_globals``, rule 4 then reseeds per batch.
6. Nothing in stoker touches a global generator otherwise.

The context (``seed, epoch, i``) is a thread-local set by the worker around each call;
the Generator itself is built only when ``rng()`` is called, so batches that do not
ask for randomness pay nothing.
"""

from __future__ import annotations

import os
import random
import threading

import numpy as np

# numpy loads ``numpy.random`` on first use (8 ms cold). Every loader draws its pass
# order from it, so it is loaded with stoker, at the top of the user's script, not
# inside the first ``iter(loader)`` where it would delay the first batch.
import numpy.random

# Stream tags keep the three uses of one seed independent of each other.
_ORDER = 0
_BATCH = 1
_GLOBALS = 2
_WORKER = 3

_context = threading.local()


def fresh_seed() -> int:
    """A root seed drawn from the OS, for loaders created without one."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def _sequence(seed: int, tag: int, *keys: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(tag, *keys))


def pass_order(seed: int, pass_index: int, n: int, since: int = 0) -> np.ndarray:
    """The permutation of ``range(n)`` used in pass ``pass_index`` (rule 2).

    ``since``: the epoch from which the source has had this length (0 unless its
    length changed); it keeps the passes after a change apart from those before.
    """
    keys = (pass_index,) if since == 0 else (pass_index, since)
    gen = np.random.Generator(np.random.PCG64(_sequence(seed, _ORDER, *keys)))
    return gen.permutation(n)


def set_context(seed: int, epoch: int, index: int) -> None:
    """Set what ``rng()`` derives from, on this thread (called by workers)."""
    _context.key = (seed, epoch, index)


def clear_context() -> None:
    """Forget the context on this thread (a worker between batches)."""
    _context.key = None


def current_key() -> tuple[int, int, int] | None:
    """``(seed, epoch, index)`` of the batch this thread is computing, or None."""
    return getattr(_context, "key", None)


def rng() -> np.random.Generator:
    """A numpy Generator for the batch (or sample) being computed now.

    Inside ``source[i]`` run by a stoker loader it is seeded from
    ``(seed, epoch, i)`` (rule 3): the same values whichever worker runs ``i``, on
    threads or processes, and after a resume. Called outside a loader's worker it
    returns an unseeded Generator (fresh OS entropy), so code that uses it still runs
    when called directly.

    Returns:
        A new ``numpy.random.Generator``; calling ``rng()`` twice inside one batch
        gives two generators with the same stream.
    """
    key = current_key()
    if key is None:
        return np.random.default_rng()
    seed, epoch, index = key
    return np.random.Generator(np.random.PCG64(_sequence(seed, _BATCH, epoch, index)))


def worker_seed(seed: int, generation: int, worker: int) -> int:
    """A 63-bit seed for worker ``worker`` of the ``generation``-th pool (rule 5)."""
    state = _sequence(seed, _WORKER, generation, worker).generate_state(2, np.uint32)
    return (int(state[0]) << 32 | int(state[1])) >> 1


def seed_worker_globals(seed: int, generation: int, worker: int) -> None:
    """Seed this process's ``random`` and ``numpy.random`` (rule 5)."""
    state = _sequence(seed, _WORKER, generation, worker).generate_state(4, np.uint32)
    random.seed(int(state[0]) << 32 | int(state[1]))
    np.random.seed(state[2:])


def reseed_globals(seed: int, epoch: int, index: int) -> None:
    """Reseed ``random`` and ``numpy.random`` from ``(seed, epoch, index)`` (rule 4).

    Only process workers call this: a process owns its global generators.
    """
    state = _sequence(seed, _GLOBALS, epoch, index).generate_state(2, np.uint32)
    random.seed(int(state[0]) << 32 | int(state[1]))
    np.random.seed(state)
