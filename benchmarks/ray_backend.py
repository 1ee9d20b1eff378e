# Run: .venv/bin/python benchmarks/ray_backend.py  (about 2 min; --quick for a smoke
# run). Last run (2 vCPUs, quiet: load under 1; a local Ray with 2 CPUs; 2026-11-29
# 12:53; table and method in docs/benchmarks.md), epoch 2 unless said:
#   local ray.init 3.24 s; first batch on the running instance 0.11 s (1 actor),
#     0.11 s (2), 0.75 s (16)
#   latency 50 ms x 320, 16 workers: stoker-ray 1.06 x ideal (epoch 1: 4.66 s),
#     Ray Data 14.06 x ideal
#   9.6 MB batches, GB/s: stoker-ray 0.64, stoker processes 15.72, Ray Data 0.30
#   trivial batch, us: stoker-ray 187, Ray Data 6573, processes 25, threads 13
"""The Ray backend against Ray Data's ``iter_batches`` and stoker's own backends.

Everything runs in one process on one local Ray instance with 2 CPUs, side by side,
so ratios within a run are what to compare (the absolute numbers move with whatever
else the machine does).

* latency: ``time.sleep(0.05)`` per batch, 16 workers (actors with 1/8 CPU each),
  against the ideal ``batches x 50 ms / 16``;
* big batches: uint8 [64, 224, 224, 3] (9.6 MB) filled per batch, 2 workers; the
  consumer touches one byte per 4 KiB page; GB/s delivered, against stoker's
  process backend and Ray Data;
* trivial batches: ``np.full(4, i)``, 2 workers; microseconds per batch;
* start-up: ``ray.init`` of a local instance (stated apart), then the time to the
  first batch of a new loader on that running instance (actors start included).

Ray Data gets the same source: ``ray.data.from_items`` of ``n`` ids, one per block,
mapped by an actor pool of the same size (``map_batches(..., concurrency=workers)``)
that calls ``source[i]``, read with ``iter_batches(batch_size=None)``. A Ray Data
dataset starts its actor pool on every iteration, so both are timed per epoch: the
first (start-up included) and the second; stoker keeps its actors across epochs.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np

import stoker

BIG = (64, 224, 224, 3)


class Sleepy:
    """Batch ``i`` after ``sleep`` seconds (I/O-like)."""

    def __init__(self, n: int, sleep: float):
        self.n = n
        self.sleep = sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        time.sleep(self.sleep)
        return np.full(4, i)


class Big:
    """Batch ``i``: a 9.6 MB uint8 array filled with ``i % 251``."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full(BIG, i % 251, np.uint8)


class Trivial:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.full(4, i)


class SourceUDF:
    """Ray Data's side: one row ``{"id": i}`` in, ``source[i]`` out."""

    def __init__(self, source: Any):
        self.source = source

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"x": np.stack([self.source[int(i)] for i in rows["id"]])}


def touch(x: np.ndarray) -> int:
    """Read one byte per 4 KiB page, so a zero-copy batch is not free."""
    return int(x.reshape(-1)[::4096].sum())


def stoker_epochs(source: Any, epochs: int, **options: Any) -> list[float]:
    times = []
    with stoker.Loader(source, max_queue_size=10, **options) as loader:
        for _ in range(epochs):
            t0 = time.perf_counter()
            for b in loader:
                touch(b)
            times.append(time.perf_counter() - t0)
    return times


def ray_data_epochs(source: Any, workers: int, cpus: float, epochs: int) -> list[float]:
    import ray

    # from_items, not range: range's read tasks want 1 CPU each, which an actor pool
    # holding all the CPUs leaves them none of (the pipeline then never starts).
    rows = [{"id": i} for i in range(len(source))]
    ds = ray.data.from_items(rows, override_num_blocks=len(source)).map_batches(
        SourceUDF,
        fn_constructor_args=(source,),
        batch_size=1,
        concurrency=workers,
        num_cpus=cpus,
        zero_copy_batch=True,
    )
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            touch(b["x"])
        times.append(time.perf_counter() - t0)
    return times


def fmt(times: list[float]) -> str:
    return " / ".join(f"{t:.2f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    quick = parser.parse_args().quick
    import ray

    t0 = time.perf_counter()
    # address="local": a new instance even when another one runs on this machine
    # (ray.init would join it, and refuse num_cpus).
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    start_s = time.perf_counter() - t0
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    print(f"start-up: local ray.init with 2 CPUs {start_s:.2f} s (stated apart)")

    # Time to first batch on the running instance: a new loader starts its actors.
    for workers in (1, 2, 16):
        src = Trivial(4)
        with stoker.Loader(src, workers=workers, backend="ray") as loader:
            t0 = time.perf_counter()
            next(iter(loader))
            first = time.perf_counter() - t0
        print(f"first batch, running cluster, {workers:2d} actors: {first:.2f} s")

    n = 80 if quick else 320
    sleepy = Sleepy(n, 0.05)
    ideal = n * 0.05 / 16
    ray_opts = stoker.RayOptions(num_cpus=0.125)
    st = stoker_epochs(sleepy, 2, workers=16, ray=ray_opts)
    rd = ray_data_epochs(sleepy, 16, 0.125, 2)
    print(
        f"latency 50 ms x {n}, 16 workers, ideal {ideal:.2f} s: stoker-ray "
        f"{fmt(st)} s ({st[-1] / ideal:.2f} x ideal), ray data {fmt(rd)} s "
        f"({rd[-1] / ideal:.2f} x ideal)  [epoch 1 / epoch 2]"
    )

    n = 16 if quick else 64
    gb = n * int(np.prod(BIG)) / 1e9
    big = Big(n)
    st = stoker_epochs(big, 2, workers=2, backend="ray")
    pr = stoker_epochs(big, 2, workers=2, use_multiprocessing=True)
    rd = ray_data_epochs(big, 2, 1.0, 2)
    print(
        f"9.6 MB x {n}, 2 workers, GB/s: stoker-ray {gb / st[-1]:.2f}, stoker "
        f"processes {gb / pr[-1]:.2f}, ray data {gb / rd[-1]:.2f}  (epoch 2; "
        f"seconds per epoch: {fmt(st)} / {fmt(pr)} / {fmt(rd)})"
    )

    n = 500 if quick else 2000
    triv = Trivial(n)
    st = stoker_epochs(triv, 2, workers=2, backend="ray")
    pr = stoker_epochs(triv, 2, workers=2, use_multiprocessing=True)
    th = stoker_epochs(triv, 2, workers=2)
    rd = ray_data_epochs(triv, 2, 1.0, 2)
    print(
        f"trivial x {n}, 2 workers, us per batch: stoker-ray {st[-1] / n * 1e6:.0f}, "
        f"ray data {rd[-1] / n * 1e6:.0f}, stoker processes {pr[-1] / n * 1e6:.0f}, "
        f"stoker threads {th[-1] / n * 1e6:.0f}  (epoch 2; epoch 1: "
        f"{st[0] / n * 1e6:.0f} / {rd[0] / n * 1e6:.0f})"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
