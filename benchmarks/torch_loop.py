"""A torch training loop fed by DataLoader vs by stoker (TorchLoader), as users run it.

Run:  .venv/bin/python benchmarks/torch_loop.py            (about 4 minutes)
      .venv/bin/python benchmarks/torch_loop.py --repeat 1 --only ttfb

Every configuration runs in a fresh Python process (imports, worker start-up and the
first epoch included), the peers interleaved in the same run, median of ``--repeat``.
Same source, model and workers on both sides; ratio = DataLoader time / stoker time
(above 1: stoker is faster).

Cases:
- ``latency``: a per-sample dataset whose samples each wait 1 ms (a read from disk
  or a bucket), batches of 32, 8 workers, a small CNN; 3 epochs, mean epoch time.
  DataLoader with its defaults (8 worker processes, started again every epoch) and
  with ``persistent_workers=True``; stoker with 8 thread workers (the wait releases
  the GIL), its default for such a source.
- ``large``: batches of 32 uint8 images 3x256x256 (6.3 MB), made per sample by numpy,
  2 process workers on each side (one per core), a step that reads a strided part of
  the batch; 2 epochs, mean epoch time.
- ``large-batched``: the same 6.3 MB batches made whole by the source in
  ``stoker.empty`` (in the worker's shared-memory slot under stoker, a plain array
  under ``DataLoader(batch_size=None)``).
- ``ttfb``: time from creating the loader to holding the first batch, 4 process
  workers, a digits-sized per-sample dataset (``start_method="fork"`` for stoker,
  as DataLoader forks on Linux).

Last numbers (2-core VM, quiet: load 0.4-0.6, torch 2.13 CPU; 2026-11-29 12:38, one
run with --repeat 3; also in docs/benchmarks.md):

  | case | DataLoader (s) | stoker (s) | ratio |
  |---|---:|---:|---:|
  | latency, per epoch, 8 workers | 0.430 | 0.294 | 1.46x |
  | latency, per epoch, persistent_workers=True | 0.330 | 0.294 | 1.12x |
  | large (6.3 MB batches), per epoch, 2 processes | 0.229 | 0.104 | 2.21x |
  | large, whole batches made in place, per epoch, 2 processes | 0.189 | 0.072 | 2.64x |
  | time to first batch, 4 processes | 0.066 | 0.014 | 4.60x |
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

CASES = ("latency", "large", "large-batched", "ttfb")
FEEDS = {
    "latency": ("dataloader", "dataloader-persistent", "stoker"),
    "large": ("dataloader", "stoker"),
    "large-batched": ("dataloader", "stoker"),
    "ttfb": ("dataloader", "stoker"),
}
LABELS = {
    "latency": "latency, per epoch, 8 workers",
    "large": "large (6.3 MB batches), per epoch, 2 processes",
    "large-batched": "large, whole batches made in place, per epoch, 2 processes",
    "ttfb": "time to first batch, 4 processes",
}


class Reads:
    """Sample ``i``: an 8x8 image after ``wait`` seconds (a read), and its label."""

    def __init__(self, n: int, wait: float) -> None:
        self.n, self.wait = n, wait

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        if self.wait:
            time.sleep(self.wait)
        return np.full((1, 8, 8), i % 16, np.float32) / 16, np.int64(i % 10)


class Images:
    """Sample ``i``: a 3x256x256 uint8 image made by numpy, and its label."""

    def __len__(self) -> int:
        return 32 * 24

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        return np.full((3, 256, 256), i % 251, np.uint8), np.int64(i % 10)


class ImageBatches:
    """Batch ``i``: 32 uint8 images 3x256x256 and labels, made in place.

    ``stoker.empty`` places the batch straight in the worker's shared-memory slot
    under stoker; under DataLoader (or anywhere else) it is a plain numpy array.
    """

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        import stoker

        images = stoker.empty((32, 3, 256, 256), np.uint8)
        images[...] = i % 251
        return images, np.arange(32, dtype=np.int64) % 10


def small_cnn() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10)
    )


def make_feed(case: str, feed: str, source: Any, workers: int) -> tuple[Any, Any]:
    """The iterable and what closes it."""
    import torch
    from torch.utils.data import DataLoader

    import stoker
    from stoker.adapters.torch import TorchLoader

    processes = case != "latency"
    batch_size = None if case == "large-batched" else 32
    if feed.startswith("dataloader"):
        loader = DataLoader(
            source,
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            persistent_workers=feed.endswith("persistent"),
            generator=torch.Generator().manual_seed(0),
        )
        return loader, None
    tl = TorchLoader(
        stoker.Loader(
            source,
            batch_size=batch_size,
            shuffle=True,
            seed=0,
            workers=workers,
            use_multiprocessing=processes,
            start_method="fork" if processes else None,
        )
    )
    return tl, tl.close


def run_one(case: str, feed: str) -> float:
    """One configuration in this process; returns the seconds measured."""
    import torch
    from torch import nn

    torch.set_num_threads(1)  # the loaders' workers get the cores
    # imported before any clock starts, as a script imports at its top
    import torch.utils.data

    import stoker.adapters.torch  # noqa: F401

    if case == "ttfb":
        start = time.perf_counter()
        batches, close = make_feed(case, feed, Reads(1797, 0.0), 4)
        next(iter(batches))
        seconds = time.perf_counter() - start
    elif case == "latency":
        model = small_cnn()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        batches, close = make_feed(case, feed, Reads(32 * 60, 0.001), 8)
        epochs = 3
        start = time.perf_counter()
        for _ in range(epochs):
            for x, y in batches:
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        seconds = (time.perf_counter() - start) / epochs
    else:
        source = ImageBatches() if case == "large-batched" else Images()
        batches, close = make_feed(case, feed, source, 2)
        epochs = 2
        start = time.perf_counter()
        total = 0.0
        for _ in range(epochs):
            for x, _y in batches:
                total += float(x[:, :, ::16, ::16].float().mean())  # reads the batch
        seconds = (time.perf_counter() - start) / epochs
    if close is not None:
        close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=CASES)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "FEED"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    cases = [args.only] if args.only else list(CASES)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for case in cases:
            for feed in FEEDS[case]:  # interleaved: drifts hit both alike
                out = subprocess.run(
                    [sys.executable, __file__, "--child", case, feed],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                )
                times.setdefault((case, feed), []).append(json.loads(out.stdout))
    print(f"fresh process per configuration, median of {args.repeat}\n")
    print("| case | DataLoader (s) | stoker (s) | ratio |")
    print("|---|---:|---:|---:|")
    digits = 3
    for case in cases:
        ours = statistics.median(times[(case, "stoker")])
        for feed in FEEDS[case]:
            if feed == "stoker":
                continue
            peer = statistics.median(times[(case, feed)])
            label = LABELS[case]
            if feed.endswith("persistent"):
                label = "latency, per epoch, persistent_workers=True"
            print(
                f"| {label} | {peer:.{digits}f} | {ours:.{digits}f} | "
                f"{peer / ours:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
