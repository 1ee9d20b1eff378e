"""Keras ``model.fit`` fed by Keras' own ``PyDataset`` workers vs by stoker.

Run:  .venv/bin/python benchmarks/keras_fit.py
      .venv/bin/python benchmarks/keras_fit.py --epochs 3 --repeat 3 --only digits

The same training twice per case, the same workers: once with the source wrapped in
a ``keras.utils.PyDataset(workers=W, use_multiprocessing=...)`` (Keras' enqueuer),
once with ``model.fit(adapt(stoker.Loader(source, workers=W, ...)))``. Both fresh
models start from the same weights; neither shuffles. Ratio = Keras time / stoker
time (above 1: stoker is faster). The median of ``--repeat`` runs is reported.

Cases:
- ``digits``: the demo's data (PNG files, 0.05 s latency per batch of 32, small
  CNN), threads, 8 workers: an I/O-bound loop.
- ``1MB``/``4MB``: batches of 1 MB / 4 MB of float32 after 5 ms of pure-Python work
  each (it holds the GIL), a one-layer model; processes (2 workers, one per core)
  and threads.

Last numbers (2-core VM shared with other jobs, torch 2.13 CPU, Keras 3.15,
defaults: 2 epochs, median of 3; also in docs/benchmarks.md):

  | case | mode | workers | Keras PyDataset (s) | stoker (s) | ratio |
  |---|---|---:|---:|---:|---:|
  | digits | threads | 8 | 1.91 | 1.42 | 1.34x |
  | 1MB | processes | 2 | 1.95 | 0.92 | 2.12x |
  | 1MB | threads | 2 | 1.63 | 1.20 | 1.36x |
  | 4MB | processes | 2 | 2.52 | 1.00 | 2.52x |
  | 4MB | threads | 2 | 1.28 | 1.02 | 1.26x |
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

from stoker.demo.digits import DigitsBatches, prepare_digits, split


class Arrays:
    """Batches of ``nbytes`` of float32, each after ``work_s`` of pure-Python work.

    The work holds the GIL, as decoding and augmentation written in Python do, so
    threads cannot overlap it and process workers can.
    """

    def __init__(self, n: int, nbytes: int, work_s: float = 0.005) -> None:
        self.n = n
        self.rows = 64
        self.features = nbytes // 4 // self.rows
        self.work_s = work_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        end = time.perf_counter() + self.work_s
        while time.perf_counter() < end:
            pass
        x = np.random.default_rng(i).random((self.rows, self.features), np.float32)
        return x, x[:, :1].copy()


_KERAS_CLASS: Any = None


def keras_dataset(source: Any, workers: int, processes: bool) -> Any:
    """``source`` as a Keras PyDataset run by Keras' own enqueuer."""
    global _KERAS_CLASS
    import keras

    if _KERAS_CLASS is None:

        class KerasSource(keras.utils.PyDataset):
            def __init__(self, source: Any, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.source = source

            def __len__(self) -> int:
                return len(self.source)

            def __getitem__(self, i: int) -> Any:
                return self.source[i]

        _KERAS_CLASS = KerasSource
    return _KERAS_CLASS(
        source, workers=workers, use_multiprocessing=processes, max_queue_size=10
    )


def model_for(case: str, features: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    if case == "digits":
        from stoker.demo.training import build_cnn

        return build_cnn()
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


def time_fit(case: str, source: Any, feed: str, workers: int, mode: str, epochs: int):
    import stoker
    from stoker.adapters.keras import adapt

    processes = mode == "processes"
    model = model_for(case, getattr(source, "features", 0))
    start = time.perf_counter()
    if feed == "keras":
        data = keras_dataset(source, workers, processes)
        model.fit(data, epochs=epochs, verbose=0, shuffle=False)
    else:
        with stoker.Loader(
            source, workers=workers, use_multiprocessing=processes, max_queue_size=10
        ) as loader:
            model.fit(adapt(loader), epochs=epochs, verbose=0)
    return time.perf_counter() - start


def cases(only: str | None) -> list[tuple[str, Any, str, int]]:
    data_dir = Path(tempfile.gettempdir()) / "stoker-bench-digits"
    train, _ = split(prepare_digits(data_dir), 48 * 32)  # as the demo
    out = [
        ("digits", DigitsBatches(train, 32, 0.05), "threads", 8),
        ("1MB", Arrays(64, 1 << 20), "processes", 2),
        ("1MB", Arrays(64, 1 << 20), "threads", 2),
        ("4MB", Arrays(32, 4 << 20), "processes", 2),
        ("4MB", Arrays(32, 4 << 20), "threads", 2),
    ]
    return [c for c in out if only is None or c[0] == only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["digits", "1MB", "4MB"])
    args = parser.parse_args()

    from stoker.demo.sweep import processes_unavailable
    from stoker.demo.training import one_torch_thread, warm_up

    no_processes = processes_unavailable()
    with one_torch_thread():  # as in the demo: steadier times on a small machine
        warm_up((np.zeros((32, 28, 28, 1), np.float32), np.zeros(32, np.int64)))
        run_cases(args, no_processes)


def run_cases(args: argparse.Namespace, no_processes: str | None) -> None:
    print(f"{args.epochs} epochs per fit, median of {args.repeat}\n")
    print("| case | mode | workers | Keras PyDataset (s) | stoker (s) | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for case, source, mode, workers in cases(args.only):
        if mode == "processes" and no_processes:
            print(f"| {case} | {mode} | {workers} | - | unavailable | - |")
            continue
        times: dict[str, list[float]] = {"keras": [], "stoker": []}
        for _ in range(args.repeat):
            for feed in ("keras", "stoker"):  # interleaved: drifts hit both alike
                times[feed].append(
                    time_fit(case, source, feed, workers, mode, args.epochs)
                )
        keras_s = statistics.median(times["keras"])
        stoker_s = statistics.median(times["stoker"])
        print(
            f"| {case} | {mode} | {workers} | {keras_s:.2f} | {stoker_s:.2f} | "
            f"{keras_s / stoker_s:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
