# Run: .venv/bin/python benchmarks/autotune_memory.py   (about 1 min;
#      --only big,files to pick workloads; --batches N for the budget's size)
# Last run: see docs/benchmarks.md, "Autotuning (issue 14)", memory.
"""Peak memory of ``workers="auto"`` runs against their ``max_memory`` (issue 14).

Each workload runs two epochs behind a 2 ms training step with every setting on
"auto" and ``max_memory`` set to ``--batches`` batches of its measured size, so that
the budget binds: without it, auto would hold up to 32 queued batches plus the
workers'. A sampler thread reads, every 5 ms:

* the consumer's live allocations (``tracemalloc``, which numpy reports its array
  buffers to): batches that threads built, and copies of batches that crossed from
  processes. Not its resident memory: glibc keeps freed 9.6 MB blocks in its arenas
  once it has raised its mmap threshold, so RSS stays at its high-water mark (it
  read 2.0x the budget on big while the live batches stayed within it);
* the machine's shared memory (``Shmem`` of ``/proc/meminfo``): the process
  workers' slot ring and one-off segments;
* each process worker's private memory (USS, ``psutil``) above the lowest it showed
  in the run (its idle start), shown on its own: the batch a worker is building,
  but also the source's own working memory, the allocator's high-water mark and
  the parent's pages it copies on write, none of which a loader holds or frees.

"Peak" is the largest sum of the first two rises over their values before the loader
was made (the source built, one batch made to measure its size), also given in
batches. The budget counts ``max_queue_size + workers`` batches: a token per batch
in flight, returned when the loop takes the batch. The loop's own batches are not
in it: the one it works on, and the one before, which its ``for`` variable still
holds while ``next()`` fetches the next (as with any loader). So the expected peak
is ``budget + 2`` batches, plus the process's other allocations (about 1 MB: a
few of the 0.4 MB batches). Also shown: the settings auto ended at.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
import tracemalloc
from typing import Any

import psutil

import stoker
from stoker._tree import nbytes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autotune import _source  # the same sources as the sweep

# cpu's batches are 56 bytes: a budget of a few of them measures nothing but noise.
_WORKLOADS = ("latency", "shift", "files", "big")
_SAMPLE_S = 0.005
_STEP_S = 0.002


def _status_kb(field: str, path: str = "/proc/self/status") -> int:
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Samples the three figures of the module docstring until ``stop``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._me = psutil.Process()
        tracemalloc.reset_peak()
        self._live0 = tracemalloc.get_traced_memory()[0]
        self._shm0 = _status_kb("Shmem", "/proc/meminfo")
        self._low: dict[int, int] = {}  # worker pid -> lowest USS seen
        self._stop_flag = threading.Event()
        self.peak = 0
        self.at_peak: tuple[int, int] = (0, 0)  # (consumer, shared) at the peak
        self.workers_peak = 0

    def run(self) -> None:
        while not self._stop_flag.wait(_SAMPLE_S):
            anon = tracemalloc.get_traced_memory()[1] - self._live0
            tracemalloc.reset_peak()
            shm = (_status_kb("Shmem", "/proc/meminfo") - self._shm0) * 1024
            workers = 0
            for child in self._me.children(recursive=True):
                try:
                    uss = child.memory_full_info().uss
                except psutil.Error:
                    continue
                low = self._low.setdefault(child.pid, uss)
                self._low[child.pid] = min(low, uss)
                workers += uss - self._low[child.pid]
            total = anon + shm  # the batches the loader holds
            if total > self.peak:
                self.peak, self.at_peak = total, (anon, shm)
            self.workers_peak = max(self.workers_peak, workers)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join()


def measure(name: str, batches: int) -> dict[str, Any]:
    source = _source(name, quick=False)
    size = nbytes(source[0])
    budget = batches * size
    gc.collect()
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    with stoker.Loader(source, workers="auto", max_queue_size="auto",
                       use_multiprocessing="auto", max_memory=budget,
                       timeout=120) as loader:  # fmt: skip
        for _ in range(2):
            for _ in loader:
                time.sleep(_STEP_S)
        s = loader.stats.summary()
    elapsed = time.perf_counter() - t0
    sampler.stop()
    anon, shm = sampler.at_peak
    workers = sampler.workers_peak
    return {
        "name": name,
        "batch_mb": size / 1e6,
        "budget_mb": budget / 1e6,
        "peak_mb": sampler.peak / 1e6,
        "parts": (anon / 1e6, shm / 1e6, workers / 1e6),
        "end": f"{s['mode']} {s['workers']}, queue {s['max_queue_size']}",
        "elapsed": elapsed,
    }


def main() -> None:
    tracemalloc.start()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(_WORKLOADS))
    p.add_argument("--batches", type=int, default=8, help="budget, in batches")
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, step "
          f"{_STEP_S * 1e3:.0f} ms, budget {args.batches} batches; load average "
          f"before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| workload | batch | max_memory (batches) | peak of batches: consumer + "
          "shared | in batches | expected: budget + 2 | workers' own growth (USS) | "
          "auto ended at | run |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---:|---|---:|")
    for name in args.only.split(","):
        r = measure(name, args.batches)
        a, sh, w = r["parts"]
        print(f"| {name} | {r['batch_mb']:.2f} MB | {r['budget_mb']:.1f} MB "
              f"({args.batches}) | {r['peak_mb']:.1f} MB = {a:.1f} + {sh:.1f} | "
              f"{r['peak_mb'] / r['batch_mb']:.1f} | {args.batches + 2} | "
              f"{w:.1f} MB | {r['end']} | {r['elapsed']:.1f} s |",
              flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
