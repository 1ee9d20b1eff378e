# Run: .venv/bin/python benchmarks/ray_chunks.py  (about 30 s). Last run (2 vCPUs
# shared with other jobs; a local Ray with 2 CPUs; docs/benchmarks.md, issue 17):
#   trivial x 2000, 2 workers, us per batch (epoch 2): one per call 369, runs per
#     call 131 (2.8x fewer us), calls over both epochs 4000 vs 779
#   2 ms x 200, 2 workers, s (epoch 2): one per call 0.25, runs per call 0.26
"""The Ray backend's per-batch overhead: one batch per actor call, against runs of
cheap batches per call (``_ray_run``'s rule), side by side in one run.

One process, one local Ray instance with 2 CPUs. The "one per call" loader is the
same code with the run length capped at 1 (``_ray_run._MAX_CHUNK = 1``), which is
what the backend did before. Workloads: ``np.full(4, i)`` (trivial: far below the
cost of a call, so batches go several to a call) and a 2 ms ``time.sleep`` per batch
(above it: one per call either way, so the rule must cost nothing there). Epoch 2 is
reported (actors start in epoch 1). The machine is shared: compare the ratios.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import ray

import stoker
from stoker._engine import _ray_run


class Trivial:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full(4, i)


class Sleepy(Trivial):
    def __getitem__(self, i: int):
        time.sleep(0.002)
        return np.full(4, i)


def epoch2(source: Any, max_chunk: int) -> tuple[float, int]:
    _ray_run._MAX_CHUNK = max_chunk
    with stoker.Loader(source, workers=2, backend="ray", max_queue_size=10) as loader:
        for _ in loader:
            pass
        t0 = time.perf_counter()
        for _ in loader:
            pass
        wall = time.perf_counter() - t0
        calls = loader.stats.summary()["backend"]["ray_calls"]
    return wall, calls


def main() -> None:
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    default = _ray_run._MAX_CHUNK
    n = 2000
    one, one_calls = epoch2(Trivial(n), 1)
    runs, run_calls = epoch2(Trivial(n), default)
    print(
        f"trivial x {n}, 2 workers, us per batch (epoch 2): one per call "
        f"{one / n * 1e6:.0f}, runs per call {runs / n * 1e6:.0f} "
        f"({one / runs:.1f}x fewer us), calls over both epochs {one_calls} vs "
        f"{run_calls}"
    )
    n = 200
    one, _ = epoch2(Sleepy(n), 1)
    runs, _ = epoch2(Sleepy(n), default)
    print(
        f"2 ms x {n}, 2 workers, s (epoch 2): one per call {one:.2f}, "
        f"runs per call {runs:.2f}"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
