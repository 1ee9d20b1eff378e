"""The write-up's experiment as a script `stoker sweep` runs once per setting.

A latency-bound source (each batch waits 20 ms, as a network read or a decode would)
fed by `workers` threads or processes. Run on its own it uses the defaults; under

    stoker sweep --grid workers=1,2,4,8 --grid use_multiprocessing=false,true \
        -- python examples/sweep_workers.py

each trial gets its `workers` and `use_multiprocessing` from `stoker.param`.
"""

from __future__ import annotations

import time

import numpy as np

import stoker

BATCHES = 40
LATENCY_S = 0.02


class Slow:
    """40 batches of 32x32 floats, each taking 20 ms to 'read'."""

    def __len__(self) -> int:
        return BATCHES

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(LATENCY_S)
        return np.full((32, 32), i, dtype=np.float32)


def main() -> None:
    workers = stoker.param("workers", default=1)
    processes = stoker.param("use_multiprocessing", default=False)
    with (
        stoker.track("sweep-workers", params={"batches": BATCHES}) as run,
        stoker.Loader(Slow(), workers=workers, use_multiprocessing=processes) as loader,
    ):
        for epoch in range(2):
            total = 0.0
            for batch in loader:
                total += float(batch[0, 0])
            run.log(epoch=epoch, checksum=total)


if __name__ == "__main__":
    main()
