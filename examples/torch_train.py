"""A small CNN on scikit-learn's digits: first fed by DataLoader, then by stoker.

Run:  .venv/bin/python examples/torch_train.py
      .venv/bin/python examples/torch_train.py --epochs 1 --limit 256 --workers 2

The same per-sample ``Dataset`` (each image "read" with ``--latency`` seconds of
waiting, as from disk or a bucket), the same model and seed, the same workers:

- ``DataLoader(dataset, batch_size=32, shuffle=True, num_workers=W)``;
- ``TorchLoader(stoker.Loader(dataset, batch_size=32, shuffle=True, seed=0,
  workers=W))``: thread workers (the wait releases the GIL), batches as tensors
  without a copy. Add ``device="cuda", pin_memory=True`` on a GPU machine.

Each prints the time and loss of every epoch and the test accuracy.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import stoker
from stoker.adapters.torch import TorchLoader


class Digits(Dataset):
    """Sample ``i``: a (1, 8, 8) float32 image in [0, 1] and its label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, latency: float) -> None:
        self.images = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        self.labels = labels.astype(np.int64)
        self.latency = latency

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        if self.latency:
            time.sleep(self.latency)  # the read a real dataset would wait for
        return self.images[i], self.labels[i]


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


def train(name: str, batches: Any, epochs: int, test: tuple[Any, Any]) -> float:
    """Train a fresh CNN on ``batches``; prints per epoch; returns the seconds."""
    model = cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    start = time.perf_counter()
    for epoch in range(epochs):
        t0, total, steps = time.perf_counter(), 0.0, 0
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        print(
            f"{name:10s} epoch {epoch}: {time.perf_counter() - t0:6.2f} s, "
            f"{steps} steps, loss {total / max(steps, 1):.3f}",
            flush=True,
        )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = (model(test[0]).argmax(1) == test[1]).float().mean()
    print(f"{name:10s} total {seconds:.2f} s, test accuracy {float(accuracy):.3f}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--limit", type=int, default=None, help="training samples")
    args = parser.parse_args()

    digits = load_digits()
    n_train = args.limit or 1400
    train_set = Digits(digits.images[:n_train], digits.target[:n_train], args.latency)
    test_set = Digits(digits.images[1400:], digits.target[1400:], 0.0)
    test = (torch.from_numpy(test_set.images), torch.from_numpy(test_set.labels))
    torch.set_num_threads(1)  # steadier times on a small machine

    data_loader = DataLoader(
        train_set,
        batch_size=32,
        shuffle=True,
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(0),
    )
    peer = train("DataLoader", data_loader, args.epochs, test)

    loader = stoker.Loader(
        train_set, batch_size=32, shuffle=True, seed=0, workers=args.workers
    )
    with TorchLoader(loader) as batches:
        ours = train("stoker", batches, args.epochs, test)
    print(f"stoker took {ours / peer:.2f}x the DataLoader's time")


if __name__ == "__main__":
    main()
