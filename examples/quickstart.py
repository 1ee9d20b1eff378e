"""The README's example, runnable: a slow source fed by 8 thread workers.

Run:  .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import time

import numpy as np

import stoker


class Batches:
    """200 batches, each waiting 10 ms as a network read would."""

    def __len__(self) -> int:
        return 200

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(0.01)
        x = np.full((32, 28, 28, 1), i % 255, np.float32)
        x += stoker.rng().normal(size=x.shape).astype(np.float32)  # (seed, epoch, i)
        return x, np.full(32, i % 10)


def main() -> None:
    with stoker.Loader(Batches(), workers=8, shuffle=True, seed=0) as loader:
        for epoch in range(2):
            t0 = time.perf_counter()
            for _x, _y in loader:
                time.sleep(0.002)  # the training step
            print(f"epoch {epoch}: {time.perf_counter() - t0:.2f} s")
        print(loader.stats)
        print(loader.stats.summary()["advice"])


if __name__ == "__main__":
    main()
