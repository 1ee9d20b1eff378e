"""What one run cost the machine: real/user/sys seconds and peak memory.

``real``, ``user`` and ``sys`` mean what ``time`` reports: wall seconds, and CPU
seconds in user and kernel mode of the whole process tree, so the CPU price of
parallelism shows next to its speed. Peak memory is the largest sum of resident set
sizes over this process and all its descendants, sampled by a background thread
(as ``memory_profiler --include-children`` does): pages a forked worker still shares
with its parent count once per process, so forked workers (Keras, torch) read higher
than they cost at first, and closer to it as copy-on-write unshares their pages.
Summing proportional sizes (PSS) instead would be exact, but reading them costs ~5 ms
per process per sample, enough to slow the loaders being measured.

Child CPU time comes from two places, because neither sees every worker:

- ``getrusage(RUSAGE_CHILDREN)`` counts children once they are reaped: exact for
  workers a loader joins (torch, stoker's own processes) but blind to workers
  reaped by someone else (a forkserver's children) or not reaped yet (a Keras pool
  left to the garbage collector).
- The sampler reads each descendant's own user/sys times while it lives; it misses
  at most the last sampling interval of a short-lived worker.

The larger of the two is reported. The sampler's own CPU time (a few /proc reads per
interval) is measured and subtracted, so an idle loader reads as idle.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, NamedTuple

import psutil

try:
    import resource
except ImportError:  # Windows: os.times(), at clock-tick resolution
    resource = None  # type: ignore[assignment]

# 20 ms between samples: a loader's memory peak lasts at least one batch, and the
# sampler then costs about 5% of one core (measured: ~1 ms per sample on 2 cores).
_SAMPLE_INTERVAL_S = 0.02
_SAMPLER_JOIN_TIMEOUT_S = 5.0


class Usage(NamedTuple):
    """Resources one run used (see the module docstring for their meaning)."""

    real_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="stoker-bench-sampler", daemon=True)
        self.stop_event = threading.Event()
        self.me = psutil.Process()
        self.peak_rss = 0
        # (pid, create_time) -> [user, sys] at the first and last sample
        self.first: dict[tuple[int, float], tuple[float, float]] = {}
        self.last: dict[tuple[int, float], tuple[float, float]] = {}
        self.cpu_s = 0.0  # this thread's own CPU time
        self.sample()  # baseline before the run starts: workers alive already

    def sample(self) -> None:
        rss = 0
        try:
            rss += self.me.memory_info().rss
            children = self.me.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            try:
                with child.oneshot():
                    rss += child.memory_info().rss
                    times = child.cpu_times()
                    key = (child.pid, child.create_time())
            except psutil.Error:  # exited between listing and reading: skip it
                continue
            pair = (times.user, times.system)
            self.first.setdefault(key, pair)
            self.last[key] = pair
        self.peak_rss = max(self.peak_rss, rss)

    def run(self) -> None:
        start = time.thread_time()
        while not self.stop_event.wait(_SAMPLE_INTERVAL_S):
            self.sample()
        self.sample()
        self.cpu_s = time.thread_time() - start

    def children_cpu(self) -> tuple[float, float]:
        user = sum(self.last[k][0] - self.first[k][0] for k in self.last)
        sys_ = sum(self.last[k][1] - self.first[k][1] for k in self.last)
        return user, sys_


class _Times(NamedTuple):
    user: float
    system: float
    children_user: float
    children_system: float


def _cpu_times() -> _Times:
    # getrusage has microsecond resolution; os.times() ticks at 10 ms, too coarse
    # for a loader that spends a few milliseconds of CPU per run.
    if resource is None:
        t = os.times()
        return _Times(t.user, t.system, t.children_user, t.children_system)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _Times(me.ru_utime, me.ru_stime, kids.ru_utime, kids.ru_stime)


class Monitor:
    """Measures one run: ``with Monitor() as m: ...``, then ``m.usage``."""

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def __enter__(self) -> Monitor:
        self._sampler = _Sampler()
        self._times = _cpu_times()
        self._t0 = time.perf_counter()
        self._sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        real = time.perf_counter() - self._t0
        self._sampler.stop_event.set()
        self._sampler.join(_SAMPLER_JOIN_TIMEOUT_S)
        end = _cpu_times()
        t0 = self._times
        own_user = end.user - t0.user
        own_sys = end.system - t0.system
        # Subtract the sampler's CPU in proportion: it is in both user and sys.
        own = own_user + own_sys
        if own > 0:
            keep = max(0.0, own - self._sampler.cpu_s) / own
            own_user, own_sys = own_user * keep, own_sys * keep
        tracked_user, tracked_sys = self._sampler.children_cpu()
        reaped_user = end.children_user - t0.children_user
        reaped_sys = end.children_system - t0.children_system
        if reaped_user + reaped_sys >= tracked_user + tracked_sys:
            child_user, child_sys = reaped_user, reaped_sys
        else:
            child_user, child_sys = tracked_user, tracked_sys
        self.usage = Usage(
            real_s=real,
            user_s=own_user + child_user,
            sys_s=own_sys + child_sys,
            peak_rss_bytes=self._sampler.peak_rss,
        )
