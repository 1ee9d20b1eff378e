"""Leak checks on threads: 50 loaders leave no thread and no file descriptor."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

import stoker
from tests import sources

pytestmark = pytest.mark.timeout(120)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(count_fn, target, seconds=5.0):
    deadline = time.monotonic() + seconds
    while count_fn() > target and time.monotonic() < deadline:
        time.sleep(0.02)
    return count_fn()


def test_fifty_loaders_leave_nothing_behind():
    gc.collect()
    threads, fds = threading.active_count(), open_fds()
    for k in range(50):
        with stoker.Loader(sources.Indexed(n=6), workers=4, shuffle=True, seed=k) as lo:
            for epoch in range(2):
                for j, _ in enumerate(lo):
                    if epoch == 0 and j == 2:
                        break  # an epoch cut short, too
    gc.collect()
    assert settle(threading.active_count, threads) == threads
    assert settle(open_fds, fds) <= fds


def test_dropped_loader_is_cleaned_by_the_finalizer():
    before = threading.active_count()
    loader = stoker.Loader(sources.Indexed(n=50, sleep=0.002), workers=4)
    it = iter(loader)
    next(it)
    del it, loader
    gc.collect()
    assert settle(threading.active_count, before) == before


def test_exception_in_the_training_step_stops_the_workers():
    before = threading.active_count()

    def train():
        with stoker.Loader(sources.Indexed(n=100, sleep=0.002), workers=4) as loader:
            for i, _ in enumerate(loader):
                if i == 3:
                    raise ArithmeticError("loss is nan")

    with pytest.raises(ArithmeticError):
        train()
    assert settle(threading.active_count, before) == before
