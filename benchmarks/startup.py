"""Process workers as users run them: a script that imports Keras and torch.

    KERAS_BACKEND=torch .venv/bin/python benchmarks/startup.py            # ~5 min
    KERAS_BACKEND=torch .venv/bin/python benchmarks/startup.py --quick    # ~1 min

Every configuration runs in a fresh interpreter, from a generated training script
that imports torch and keras at top level (as every training script does) and
defines its source class in ``__main__``, once with and once without a main guard.
Each builds a new loader, and reports the time to its first batch, its first
epoch, and a second epoch (stoker keeps its pool: a warm epoch; torch's default
``persistent_workers=False`` starts new workers each epoch, as users run it).

Workloads: ``latency`` (80 batches, 50 ms each, small arrays: ideal epoch is
80 x 50 ms / W) and ``big`` (9.6 MB uint8 batches, 2 workers: GB/s of the warm
epoch, and the rise of the process tree's peak PSS over the script's own).

Loaders: stoker (default start method, fork), stoker with forkserver (the old
default), torch ``DataLoader`` (fork), Keras 3 ``PyDataset`` with
``use_multiprocessing=True`` through Keras' own adapter, and a naive
``ProcessPoolExecutor.map`` (fork).

Last run: see docs/benchmarks.md ("Worker start-up in real scripts").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = '''
import json, math, os, sys, threading, time
T_START = time.perf_counter()
import torch
import keras
import numpy as np
import psutil
import stoker

WORKLOAD, LOADER, WORKERS = sys.argv[1], sys.argv[2], int(sys.argv[3])
BIG = (64, 224, 224, 3)


class Latency(keras.utils.PyDataset):
    def __init__(self, **kw):
        super().__init__(**kw)
    def __len__(self):
        return 80
    def __getitem__(self, i):
        time.sleep(0.05)
        return np.full((128, 28, 28, 1), i, np.float32)


class Big(keras.utils.PyDataset):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.pool = np.random.default_rng(0).integers(0, 255, (8, *BIG[1:]), np.uint8)
    def __len__(self):
        return 40
    def __getitem__(self, i):
        return self.pool[np.arange(i, i + BIG[0]) % 8]


class Cpu(keras.utils.PyDataset):
    """Pure-Python work per batch (holds the GIL): about 5 ms on one core."""
    def __init__(self, **kw):
        super().__init__(**kw)
    def __len__(self):
        return 120
    def __getitem__(self, i):
        acc = i + 1
        for _ in range(30_000):
            acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
        return np.full((128, 28, 28, 1), acc % 256, np.float32)


SOURCES = {"latency": Latency, "big": Big, "cpu": Cpu}
ENDED = []  # stoker-auto: the settings it ended at, and its decisions


def touch(batch):
    # Read one byte per page, so that pages never mapped cost their fault.
    flat = np.asarray(batch).reshape(-1)
    return int(flat[:: 4096].sum())


class PeakPss(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = threading.Event()
    def run(self):
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_full_info().pss
                except (psutil.Error, OSError):
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(0.05)


def epochs(make, n_epochs):
    """[(first batch s, epoch s, bytes)] for n_epochs over loaders from make()."""
    out = []
    for it_factory in make(n_epochs):
        t0 = time.perf_counter()
        first = None
        size = 0
        for b in it_factory():
            if first is None:
                first = time.perf_counter() - t0
            size += np.asarray(b).nbytes
            touch(b)
        out.append((first, time.perf_counter() - t0, size))
    return out


def stoker_loader(method):
    def make(n):
        src = SOURCES[WORKLOAD]()
        kw = {} if method is None else {"start_method": method}
        ld = stoker.Loader(src, workers=WORKERS, use_multiprocessing=True, **kw)
        for _ in range(n):
            yield lambda: iter(ld)
        ld.close()
    return make


def stoker_auto(n):
    # Every setting on "auto": threads first, processes mid-epoch if GIL-bound.
    ld = stoker.Loader(SOURCES[WORKLOAD](), workers="auto", max_queue_size="auto",
                       use_multiprocessing="auto")
    for _ in range(n):
        yield lambda: iter(ld)
    s = ld.stats.summary()
    ENDED.append({"end": f"{s['mode']} {s['workers']}, queue {s['max_queue_size']}",
                  "decisions": [(d["at_s"], d["setting"], d["from"], d["to"])
                                for d in s["tuning"]]})
    ld.close()


def torch_loader(n):
    from torch.utils.data import DataLoader
    src = SOURCES[WORKLOAD]()
    prefetch = math.ceil(10 / WORKERS) + 1
    ld = DataLoader(src, batch_size=None, num_workers=WORKERS, prefetch_factor=prefetch)
    for _ in range(n):
        yield lambda: iter(ld)


def keras_loader(n):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    src = SOURCES[WORKLOAD](workers=WORKERS, use_multiprocessing=True,
                            max_queue_size=10)
    adapter = PyDatasetAdapter(src, shuffle=False)
    for _ in range(n):
        def run():
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()
        yield run


def pool_loader(n):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    src = SOURCES[WORKLOAD]()
    ctx = multiprocessing.get_context("fork")
    for _ in range(n):
        def run():
            with ProcessPoolExecutor(WORKERS, mp_context=ctx) as ex:
                yield from ex.map(src.__getitem__, range(len(src)))
        yield run


LOADERS = {
    "stoker": stoker_loader(None),
    "stoker-forkserver": stoker_loader("forkserver"),
    "stoker-auto": stoker_auto,
    "torch": torch_loader,
    "keras": keras_loader,
    "pool": pool_loader,
}


def main():
    imported = time.perf_counter() - T_START
    watch = PeakPss()
    base = watch.peak
    me = psutil.Process()
    base = me.memory_full_info().pss
    watch.start()
    try:
        got = epochs(LOADERS[LOADER], 2)
        error = None
    except Exception as exc:
        got, error = [], f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    watch.stop.set()
    watch.join()
    print("RESULT " + json.dumps({
        "import_s": imported, "epochs": got, "error": error, "auto": ENDED,
        "pss_rise_mb": (watch.peak - base) / 1e6,
    }), flush=True)
'''


def write_scripts(folder: Path) -> dict[str, Path]:
    body = textwrap.dedent(SCRIPT)
    guarded = body + '\n\nif __name__ == "__main__":\n    main()\n'
    unguarded = body + "\n\nmain()\n"
    paths = {"guarded": folder / "train_guarded.py", "unguarded": folder / "train.py"}
    paths["guarded"].write_text(guarded)
    paths["unguarded"].write_text(unguarded)
    return paths


def run_one(script: Path, workload: str, loader: str, workers: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    env.pop("STOKER_START_METHOD", None)
    try:
        out = subprocess.run(
            [sys.executable, str(script), workload, loader, str(workers)],
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 400 s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {out.returncode}: {tail[:160]}"}


def fmt(x: float | None, unit: str = "s") -> str:
    if x is None:
        return "-"
    return f"{x:.2f} {unit}" if unit == "s" else f"{x:.0f} {unit}"


def latency_table(scripts: dict[str, Path], workers: list[int], loaders: list[str]):
    print(
        "\n### latency: 80 batches x 50 ms; time to first batch | first epoch | "
        "second epoch (ideal epoch 4.0 s / W)\n"
    )
    for guard, script in scripts.items():
        print(f"\n{guard} script\n")
        print("| loader | " + " | ".join(f"W={w}" for w in workers) + " |")
        print("|---|" + "---|" * len(workers))
        for loader in loaders:
            cells = []
            for w in workers:
                r = run_one(script, "latency", loader, w)
                if r.get("error"):
                    cells.append(f"fails: {r['error'][:70]}")
                    continue
                (f1, e1, _), (_, e2, _) = r["epochs"]
                cells.append(f"{fmt(f1)} \\| {fmt(e1)} \\| {fmt(e2)}")
            print(f"| {loader} | " + " | ".join(cells) + " |", flush=True)


def big_table(scripts: dict[str, Path], loaders: list[str]):
    print("\n### big: 40 batches of 9.6 MB, 2 workers (guarded script)\n")
    print(
        "| loader | first batch | first epoch GB/s | second epoch GB/s | "
        "peak PSS rise |"
    )
    print("|---|---|---|---|---|")
    for loader in loaders:
        r = run_one(scripts["guarded"], "big", loader, 2)
        if r.get("error"):
            print(f"| {loader} | fails: {r['error'][:80]} | | | |")
            continue
        (f1, e1, b1), (_, e2, b2) = r["epochs"]
        print(
            f"| {loader} | {fmt(f1)} | {b1 / e1 / 1e9:.2f} | {b2 / e2 / 1e9:.2f} | "
            f"{r['pss_rise_mb']:.0f} MB |",
            flush=True,
        )


def auto_table(scripts: dict[str, Path]):
    """stoker with every setting on "auto" beside fixed settings and the peers."""
    print(
        "\n### auto: a new loader with workers, max_queue_size and "
        'use_multiprocessing all "auto"; time to first batch | first epoch | '
        "second epoch (cpu: 120 batches of about 5 ms of pure Python; latency: 80 "
        "x 50 ms)\n"
    )
    plan = [("stoker-auto", 0), ("stoker", 2), ("torch", 2), ("keras", 2)]
    for workload in ("cpu", "latency"):
        for guard, script in scripts.items():
            print(f"\n{workload}, {guard} script\n")
            print("| loader | W | first batch \\| first epoch \\| second epoch | "
                  "auto ended at (decisions: s, setting, from, to) |")  # fmt: skip
            print("|---|---|---|---|")
            for loader, w in plan:
                w = w if workload == "cpu" or loader == "stoker-auto" else 16
                r = run_one(script, workload, loader, w)
                if r.get("error"):
                    print(f"| {loader} | {w} | fails: {r['error'][:80]} | |")
                    continue
                (f1, e1, _), (_, e2, _) = r["epochs"]
                ended = r.get("auto") or [{}]
                end = ended[0].get("end", "")
                if end:
                    end += f" ({ended[0]['decisions']})"
                print(f"| {loader} | {w or 'auto'} | {fmt(f1)} \\| {fmt(e1)} "
                      f"\\| {fmt(e2)} | {end} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="W=1,4,16 and 3 loaders")
    parser.add_argument("--workers", default="1,2,4,6,8,16")
    parser.add_argument(
        "--loaders", default="stoker,stoker-forkserver,torch,keras,pool"
    )
    parser.add_argument("--only", default="latency,big,auto")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    loaders = args.loaders.split(",")
    if args.quick:
        workers, loaders = [1, 4, 16], ["stoker", "torch", "pool"]
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        scripts = write_scripts(Path(tmp))
        imports = [run_one(scripts["guarded"], "latency", "stoker", 1).get("import_s")]
        print(
            f"import torch + keras + stoker in a fresh process: "
            f"{statistics.median([i for i in imports if i]):.2f} s"
        )
        if "latency" in args.only:
            latency_table(scripts, workers, loaders)
        if "big" in args.only:
            big_table(scripts, loaders)
        if "auto" in args.only:
            auto_table(scripts)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
