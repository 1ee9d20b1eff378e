# Run: .venv/bin/python benchmarks/track_log_cost.py
#
# What one `run.log(...)` (and one loader report, `run.on_batch`) costs the caller's
# thread while the run's writer thread stores everything in the background.
#
# "in a loop": each call is timed alone (perf_counter_ns around it, minus the same
#   around an empty call) inside a loop that does 0.2 ms of GIL-releasing work per
#   step, as a training step does; median and 99th percentile over --steps calls.
# "tight": the caller does nothing but log, --calls times, so the writer thread's
#   share of the GIL lands on it too: the worst case, per call.
# "end to end": a tight burst, then wait until the writer has stored it; the whole
#   process's cost per point (caller + writer).
#
# Last result (2 cores shared with other jobs, load average 1.5 to 3, Python 3.11.7,
# SQLite 3.40.1; on this shared machine the medians move by up to 2x between runs):
#
#   in a loop (us/call)                        median      p99
#   empty call (timer; subtracted below)         0.16     1.07
#   run.log(step=i, loss=x)                      2.03    22.09
#   run.log(step=i, loss, acc, lr)               1.90     8.80
#   run.log(loss=x)  (auto step)                 2.96     7.26
#   run.log({"val/loss": x}, step=i)             3.13     7.88
#   run.log(step=i, loss=np.float32)             2.62    14.12
#   run.on_batch(event)  (loader report)         1.02     4.16
#   tight loop (us/call)                       median     best
#   run.log(step=i, loss=x)                      1.98     1.66
#   run.log(step=i, loss, acc, lr)               2.68     1.65
#   run.on_batch(event)  (loader report)         0.74     0.40
#   end to end: 5.73 us per point logged and stored
#   points in store: 1,335,000 of 1,335,000 logged
#
# Target (issue 7): <= 5 us per run.log on the caller's thread.
"""Measure the caller-thread cost of ``run.log`` and of the observer hot path."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stoker import BatchEvent
from stoker.track.api import Run, get_run, track

_WORK_S = 0.0002  # one simulated training step; time.sleep releases the GIL


def _cases(run: Run) -> list[tuple[str, Callable[[int], None], int]]:
    log = run.log
    npval = np.float32(0.5)
    event = BatchEvent("loader-1", 0, 0, 0, 0.001, 0.002, 3, 1024)
    return [
        ("run.log(step=i, loss=x)", lambda i: log(step=i, loss=0.5), 1),
        (
            "run.log(step=i, loss, acc, lr)",
            lambda i: log(step=i, loss=0.5, acc=0.9, lr=1e-3),
            3,
        ),
        ("run.log(loss=x)  (auto step)", lambda i: log(loss=0.5), 1),
        (
            'run.log({"val/loss": x}, step=i)',
            lambda i: log({"val/loss": 0.5}, step=i),
            1,
        ),
        ("run.log(step=i, loss=np.float32)", lambda i: log(step=i, loss=npval), 1),
        ("run.on_batch(event)  (loader report)", lambda i: run.on_batch(event), 0),
    ]


def _in_a_loop(call: Callable[[int], None], steps: int) -> list[float]:
    clock, sleep = time.perf_counter_ns, time.sleep
    out = []
    for i in range(steps):
        sleep(_WORK_S)
        t0 = clock()
        call(i)
        out.append(clock() - t0)
    return out


def _tight(call: Callable[[int], None], calls: int, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(calls):
            call(i)
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=5_000, help="calls in a loop")
    ap.add_argument("--calls", type=int, default=100_000, help="tight-loop calls")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
        return _measure(args, Path(tmp) / "store.db")


def _measure(args: argparse.Namespace, store: Path) -> int:
    logged = 0
    with track("log-cost", store=store, capture=False) as run:
        cases = _cases(run)
        baseline = np.asarray(_in_a_loop(lambda i: None, args.steps))
        empty = np.median(baseline)
        print(f"{'in a loop (us/call)':<40} {'median':>8} {'p99':>8}")
        p50, p99 = np.percentile(baseline, [50, 99]) / 1000
        print(f"{'empty call (timer; subtracted below)':<40} {p50:>8.2f} {p99:>8.2f}")
        for name, call, points in cases:
            run.flush(timeout=120)
            ns = np.asarray(_in_a_loop(call, args.steps)) - empty
            logged += points * args.steps
            p50, p99 = np.percentile(ns, [50, 99]) / 1000
            print(f"{name:<40} {p50:>8.2f} {p99:>8.2f}")
        print(f"{'tight loop (us/call)':<40} {'median':>8} {'best':>8}")
        for name, call, points in (cases[0], cases[1], cases[5]):
            run.flush(timeout=120)
            times = _tight(call, args.calls, args.repeats)
            logged += points * args.calls * args.repeats
            print(f"{name:<40} {statistics.median(times):>8.2f} {min(times):>8.2f}")
        run.flush(timeout=120)
        t0 = time.perf_counter()
        _tight(cases[0][1], args.calls, 1)
        run.flush(timeout=120)
        end_to_end = (time.perf_counter() - t0) / args.calls * 1e6
        logged += args.calls
    stored = sum(m["count"] for m in get_run(run.id, store)["metrics"].values())
    print(f"end to end: {end_to_end:.2f} us per point logged and stored")
    print(f"points in store: {stored:,} of {logged:,} logged")
    return 0 if stored == logged else 1


if __name__ == "__main__":
    sys.exit(main())
