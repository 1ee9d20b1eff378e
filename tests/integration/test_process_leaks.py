"""Creating and closing many process loaders leaks no process, fd, thread or shm."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import psutil
import pytest

import stoker
from tests import sources_proc

pytestmark = pytest.mark.timeout(120)
# /dev/shm names: stoker's own (it uses none: memfd), multiprocessing's
# SharedMemory and semaphores.
_OURS = ("stoker", "psm_", "sem.mp", "mp-")


def snapshot() -> dict[str, int]:
    me = psutil.Process()
    kids = [
        k for k in me.children(recursive=True) if k.status() != psutil.STATUS_ZOMBIE
    ]
    return {
        "processes": len(kids),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        # Only what Python or stoker could create: other programs on the machine
        # come and go in /dev/shm while the test runs.
        "dev_shm": len([n for n in os.listdir("/dev/shm") if n.startswith(_OURS)]),
    }


def settled(baseline: dict[str, int], timeout: float = 5.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = snapshot()
        if all(now[k] <= baseline[k] for k in now) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def one_loader(method: str, k: int) -> None:
    # Big arrays (slots, one-offs for the first batches), three ways to end.
    src = sources_proc.Arrays(n=6, shape=(64, 1024))
    ld = stoker.Loader(
        src, workers=2, use_multiprocessing=True, start_method=method, timeout=30
    )
    if k % 3 == 0:
        with ld:
            list(ld)
            list(ld)
    elif k % 3 == 1:
        kept = []
        for b in ld:
            kept.append(b)
            break
        ld.close()
        del kept
    else:
        list(ld)
        del ld  # the garbage collector's finalizer stops it


@pytest.mark.parametrize(
    ("method", "count"),
    [
        ("fork", 50),
        ("forkserver", 50),
        ("spawn", 6),
        pytest.param("spawn", 50, marks=pytest.mark.slow),
    ],
)
def test_many_loaders_leak_nothing(method, count):
    one_loader(method, 0)  # starts the forkserver / resource tracker once
    baseline = settled(snapshot(), 0.5)
    for k in range(count):
        one_loader(method, k)
    after = settled(baseline)
    assert after == baseline


def moving_loader(k: int) -> None:
    # use_multiprocessing="auto" moving threads -> processes (and back) mid-epoch,
    # ended three ways: whole epochs, a break during the move, the finalizer.
    ld = stoker.Loader(sources_proc.Arrays(n=12, shape=(64, 1024)), workers=2,
                       max_queue_size=2, use_multiprocessing="auto",
                       start_method="fork", timeout=30)  # fmt: skip
    feed: Any = ld._feed  # the engine's own handle, to force the moves
    for epoch in range(2):
        for i, _ in enumerate(ld):
            if i == 2:
                feed.switch_mode("process" if epoch == 0 else "thread", 2, 4)
                if k % 3 == 1:
                    break
        if epoch == 0 and k % 3 != 1:
            assert feed.mode == "process" and feed.backend.pids
    if k % 3 == 2:
        del ld, feed
    else:
        ld.close()


def test_moving_mid_epoch_leaks_nothing():
    moving_loader(0)
    baseline = settled(snapshot(), 0.5)
    for k in range(12):
        moving_loader(k)
    after = settled(baseline)
    assert after == baseline
