# Run: KERAS_BACKEND=torch .venv/bin/python benchmarks/processes.py  (about 1.5 min;
# --quick for a smoke run). Last run (2 vCPUs, 2 workers, max_queue_size=10; full
# table and method in docs/benchmarks.md), GB/s delivered / per batch:
#   9.6 MB batches: stoker 12.8 (stoker.empty 22.5), keras 0.33, torch 0.90,
#                   naive ProcessPoolExecutor 0.33; memcpy 35.0 (17.2 beyond L3)
#   40 MB batches:  stoker 7.3 (stoker.empty 26.4), keras 0.24, torch 0.92, naive 0.38
#   trivial batch:  stoker 25 us, keras 317 us, torch 1073 us, naive 163 us
#   CPU-bound Python, wall / (CPU work / 2): stoker 1.08, keras 1.54, torch 1.55
#   latency 20 ms x 64 batches: 1.03 to 1.07 x ideal for 1 to 16 workers
#   peak shared memory 1.08 x (queue + workers) x batch; resync 78 ms per epoch
"""Process workers: stoker against Keras, torch and a naive prefetcher, same run.

Workloads (2 workers unless said otherwise):

* big batches: uint8 [64, 224, 224, 3] (9.6 MB) and [64, 458, 458, 3] (40 MB), each
  stacked from 64 samples by the source (``np.stack``; stoker also with
  ``np.stack(out=stoker.empty(...))``). The consumer touches one byte per 4 KiB
  page (a sum), so zero-copy delivery is not free; GB/s of batch bytes delivered,
  against ``numpy.copyto`` bandwidth measured in the same run;
* trivial batches: ``np.full(4, i)``; microseconds per batch;
* CPU-bound pure Python (about 4 ms per batch): wall time over (serial CPU work / 2);
* latency: ``time.sleep(0.02)`` per batch, 1 to 16 workers, against the ideal;
* peak shared memory (``Shmem`` in /proc/meminfo) against
  ``(max_queue_size + workers) x batch size``;
* startup per start method, and the cost of resending a reshuffled ``Sequence``.

Steady state: every framework runs a first epoch that is not timed (pool start-up,
first touches), then the timed epochs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np

import stoker
from stoker._engine.process.shm import empty as shm_empty

os.environ.setdefault("KERAS_BACKEND", "torch")
SMALL = (64, 224, 224, 3)
LARGE = (64, 458, 458, 3)
WORKERS = 2
QUEUE = 10


# -- sources (module level: spawn and forkserver workers import them) ----------------
class Stacked:
    """Batch ``i``: 64 samples from a pool of 8 stacked into one uint8 array."""

    def __init__(self, n: int, shape: tuple[int, ...], use_empty: bool = False):
        self.n = n
        self.shape = shape
        self.use_empty = use_empty
        rng = np.random.default_rng(0)
        self.pool = rng.integers(0, 255, (8, *shape[1:]), dtype=np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        samples = [self.pool[(i + k) % 8] for k in range(self.shape[0])]
        out = shm_empty(self.shape, np.uint8) if self.use_empty else None
        return np.stack(samples, out=out), np.arange(self.shape[0]) + i


class Trivial:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return np.full(4, i)


def python_work(i: int, loops: int) -> int:
    total = i
    for k in range(loops):
        total = (total * 31 + k) % 1_000_003
    return total


class CpuBound:
    """Pure-Python work; batch ``i`` reports the CPU seconds its own thread spent."""

    def __init__(self, n: int, loops: int):
        self.n = n
        self.loops = loops

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        c0 = time.thread_time()
        value = python_work(i, self.loops)
        return np.array([value, time.thread_time() - c0])


class Sleepy:
    def __init__(self, n: int, sleep: float):
        self.n = n
        self.sleep = sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        time.sleep(self.sleep)
        return np.array([i])


class Reshuffled:
    """A Keras-style Sequence: 1M indices reshuffled per epoch, 100 MB static data."""

    def __init__(self, n: int = 64):
        self.n = n
        self.indices = np.arange(1_000_000)
        self.data = np.ones(100 << 20, np.uint8)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return np.array([self.indices[i], self.epoch])

    def on_epoch_end(self) -> None:
        self.epoch += 1
        np.random.default_rng(self.epoch).shuffle(self.indices)


def first(batch: Any) -> np.ndarray:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


CPU_SPENT: list[float] = []  # what CpuBound batches report, as they arrive


def touch(batch: Any) -> int:
    """Read one byte per page of the batch's first array."""
    x = first(batch)
    if x.dtype == np.float64 and x.shape == (2,):
        CPU_SPENT.append(float(x[1]))
    return int(x.reshape(-1)[::4096].sum())


# -- the contenders: each returns a function running one epoch over the source -------
def run_stoker(source: Any, epochs: int, **kw: Any) -> tuple[list[float], Any]:
    kw.setdefault("workers", WORKERS)
    times = []
    with stoker.Loader(
        source, use_multiprocessing=True, max_queue_size=QUEUE, **kw
    ) as loader:
        for _ in range(epochs + 1):
            t0 = time.perf_counter()
            for b in loader:
                touch(b)
            times.append(time.perf_counter() - t0)
        backend = loader._feed.backend
    return times[1:], backend


def run_keras(source: Any, epochs: int, workers: int = WORKERS) -> list[float]:
    import keras
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    class Wrapped(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(
                workers=workers, use_multiprocessing=True, max_queue_size=QUEUE
            )

        def __len__(self) -> int:
            return len(source)

        def __getitem__(self, i: int) -> Any:
            return source[i]

    adapter = PyDatasetAdapter(Wrapped(), shuffle=False)
    times = []
    for _ in range(epochs + 1):
        t0 = time.perf_counter()
        adapter.on_epoch_begin()
        for b in adapter.get_numpy_iterator():
            touch(b)
        adapter.on_epoch_end()
        times.append(time.perf_counter() - t0)
    return times[1:]


class TorchView:
    def __init__(self, source: Any):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Any:
        return self.source[i]


def run_torch(source: Any, epochs: int, workers: int = WORKERS) -> list[float]:
    import torch.utils.data

    loader = torch.utils.data.DataLoader(
        TorchView(source),
        batch_size=None,
        num_workers=workers,
        persistent_workers=True,
        prefetch_factor=-(-(QUEUE + workers) // workers),  # the same bound as stoker
    )
    times = []
    for _ in range(epochs + 1):
        t0 = time.perf_counter()
        for b in loader:
            touch(b)
        times.append(time.perf_counter() - t0)
    del loader
    return times[1:]


_naive_source: Any = None


def _naive_init(source: Any) -> None:
    global _naive_source
    _naive_source = source


def _naive_get(i: int) -> Any:
    return _naive_source[i]


def run_naive(source: Any, epochs: int, workers: int = WORKERS) -> list[float]:
    """A ProcessPoolExecutor keeping ``QUEUE + workers`` batches in flight."""
    times = []
    with concurrent.futures.ProcessPoolExecutor(
        workers, initializer=_naive_init, initargs=(source,)
    ) as ex:
        for _ in range(epochs + 1):
            t0 = time.perf_counter()
            todo = iter(range(len(source)))
            window: deque[Any] = deque()
            for i in todo:
                window.append(ex.submit(_naive_get, i))
                if len(window) == QUEUE + workers:
                    break
            while window:
                touch(window.popleft().result())
                for i in todo:
                    window.append(ex.submit(_naive_get, i))
                    break
            times.append(time.perf_counter() - t0)
    return times[1:]


CONTENDERS = {"keras": run_keras, "torch": run_torch, "naive": run_naive}


def row(*cells: object) -> str:
    """One markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def available(name: str) -> bool:
    try:
        __import__({"keras": "keras", "torch": "torch"}.get(name, "os"))
    except Exception:
        return False
    return True


# -- measurements --------------------------------------------------------------------
def memcpy_gbps(shape: tuple[int, ...]) -> float:
    src = np.ones(shape, np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return src.nbytes / best / 1e9


class ShmemPeak:
    """Samples Shmem from /proc/meminfo in a thread; peak minus the baseline."""

    def __init__(self) -> None:
        self.base = self.read()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> int:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Shmem:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> ShmemPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def big_batches(quick: bool, rows: list[str]) -> None:
    for shape, n in ((SMALL, 100), (LARGE, 24)):
        n = n // 2 if quick else n
        size = int(np.prod(shape))
        what = f"big batch {size / 1e6:.1f} MB"
        copy = memcpy_gbps(shape)
        rows.append(row(what, "memcpy (numpy.copyto)", f"{copy:.2f} GB/s", "1"))
        if shape == SMALL:
            dram = memcpy_gbps((256 << 20,))
            rows.append(
                row(
                    "256 MB (beyond L3)",
                    "memcpy (numpy.copyto)",
                    f"{dram:.2f} GB/s",
                    "",
                )
            )
        for label, use_empty in (("stoker", False), ("stoker + stoker.empty", True)):
            with ShmemPeak() as peak:  # more epochs: short ones are noisy here
                times, _ = run_stoker(Stacked(n, shape, use_empty), 4)
            rate = n * size / statistics.median(times) / 1e9
            rows.append(row(what, label, f"{rate:.2f} GB/s", f"{rate / copy:.2f}"))
            used = peak.peak - peak.base
            bound = (QUEUE + WORKERS) * size
            rows.append(
                row(
                    what,
                    f"{label}: peak shared memory",
                    f"{used / 1e6:.0f} MB",
                    f"{used / bound:.2f} x (queue + workers) x batch",
                )
            )
        for name, run in CONTENDERS.items():
            if available(name):
                times = run(Stacked(n, shape), 2)
                rate = n * size / statistics.median(times) / 1e9
                rows.append(row(what, name, f"{rate:.2f} GB/s", f"{rate / copy:.2f}"))


def trivial(quick: bool, rows: list[str]) -> None:
    n = 1000 if quick else 5000
    times, _ = run_stoker(Trivial(n), 2)
    per = statistics.median(times) / n * 1e6
    rows.append(row("trivial batch", "stoker", f"{per:.0f} us/batch", ""))
    for name, run in CONTENDERS.items():
        if available(name):
            m = n // 5
            t = run(Trivial(m), 2)
            per = statistics.median(t) / m * 1e6
            rows.append(row("trivial batch", name, f"{per:.0f} us/batch", ""))


def cpu_bound(quick: bool, rows: list[str]) -> None:
    """Wall time over (CPU seconds the work took in the workers / workers).

    Each batch measures its own thread's CPU time, so a slower or busier CPU
    (this machine is shared) does not count against the loader; 1.0 is perfect.
    """
    loops = 120_000
    n = 40 if quick else 100
    runs: list[tuple[str, Any]] = [
        ("stoker", lambda: run_stoker(CpuBound(n, loops), 2)[0])
    ]
    runs += [
        (name, lambda run=run: run(CpuBound(n, loops), 2))
        for name, run in CONTENDERS.items()
        if available(name)
    ]
    for name, go in runs:
        CPU_SPENT.clear()
        times = go()
        per_epoch = sum(CPU_SPENT[-n:])  # the last timed epoch
        wall = times[-1]
        ratio = wall / (per_epoch / WORKERS)
        rows.append(
            row(
                f"CPU-bound Python ({per_epoch / n * 1e3:.1f} ms/batch)",
                name,
                f"{wall:.2f} s",
                f"{ratio:.2f} x (CPU work / {WORKERS})",
            )
        )


def latency(quick: bool, rows: list[str]) -> None:
    n, sleep = 64, 0.02
    for workers in (1, 4, 16) if quick else (1, 2, 4, 8, 16):
        times, _ = run_stoker(Sleepy(n, sleep), 2, workers=workers)
        ideal = -(-n // workers) * sleep
        t = statistics.median(times)
        what = f"latency 20 ms, {workers} workers"
        rows.append(row(what, "stoker", f"{t:.3f} s", f"{t / ideal:.2f} x ideal"))


def startup(rows: list[str]) -> None:
    for method in ("fork", "forkserver", "spawn"):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            with stoker.Loader(
                Trivial(2),
                workers=WORKERS,
                use_multiprocessing=True,
                start_method=method,
            ) as loader:
                next(iter(loader))
                best = min(best, time.perf_counter() - t0)
        rows.append(
            f"| start-up to first batch, {method} | stoker | {best * 1e3:.0f} ms | |"
        )


def resync(rows: list[str]) -> None:
    _, backend = run_stoker(Reshuffled(), 3)
    cost = statistics.median(list(backend.update_s)[1:])
    size = statistics.median(backend.update_bytes)
    rows.append(
        f"| resync per epoch (1M indices reshuffled, 100 MB static) | stoker | "
        f"{cost * 1e3:.0f} ms | sends {size / 1e6:.1f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches")
    parser.add_argument(
        "--only", default="", help="comma list: big,trivial,cpu,latency,startup,resync"
    )
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    rows = ["| workload | loader | result | ratio |", "|---|---|---|---|"]
    steps = {
        "big": lambda: big_batches(args.quick, rows),
        "trivial": lambda: trivial(args.quick, rows),
        "cpu": lambda: cpu_bound(args.quick, rows),
        "latency": lambda: latency(args.quick, rows),
        "startup": lambda: startup(rows),
        "resync": lambda: resync(rows),
    }
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {WORKERS} workers, "
        f"max_queue_size={QUEUE}, stoker start method: default (forkserver), "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    for name, step in steps.items():
        if not only or name in only:
            t0 = time.perf_counter()
            step()
            print(
                f"[{name}: {time.perf_counter() - t0:.0f} s]",
                file=sys.stderr,
                flush=True,
            )
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
