# Run: .venv/bin/python benchmarks/autotune_converge.py   (about 3 min;
#      --only latency,shift to pick workloads; --seconds S for the epoch length)
# Last run: see docs/benchmarks.md, "Autotuning (issue 14)", convergence.
"""How fast ``workers="auto"`` converges, on one long epoch per workload (issue 14).

The target: within 2 s or 10% of the first epoch, whichever is shorter. The short
epochs of ``benchmarks/autotune.py`` (about a second at the best setting) cannot
show it: 10% of them is under one measuring window. So here each workload runs one
epoch of about ``--seconds`` behind the same training loop (``--step`` per batch),
from a new loader with every setting on "auto", and the consumer notes when each
batch arrived. The best fixed point of ``autotune.py``'s sweep (``_BEST``) runs the
same epoch first: auto's time against it, over the whole epoch (convergence
included) and over its second half.

Converged at: the first moment after which every 0.25 s bin of the delivery rate
stays at or above 90% of the rate over the epoch's last 30% (its steady state).
For ``shift`` (5 ms per batch, then 40 ms from the middle on), each half is a
phase of its own: the first half against its own last 30%, and again from the
shift against the second half's steady state (how fast auto follows a source that
changes speed); both against the target set by the first epoch. The last tuning
decision is shown beside it (later decisions can be probes of a ceiling that change
nothing for long).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

import stoker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autotune import ShiftSource  # the same sources as the sweep

from stoker.bench.workloads import make_workload

# Batches per second at the best fixed point of autotune.py's sweep (2 ms step),
# to size an epoch of about --seconds.
_RATE = {"latency": 400, "shift": 200, "files": 140, "cpu": 200, "big": 450}
# The best fixed point of autotune.py's sweep on a quiet machine (its table in
# docs/benchmarks.md), run on the same long epoch beside auto: (processes, workers,
# queue).
_BEST = {
    "latency": (False, 64, 10),
    "shift": (False, 16, 10),
    "files": (False, 4, 10),
    "cpu": (True, 2, 10),
    "big": (False, 1, 2),
}
_BIN_S = 0.25
_STEADY = 0.3  # the last 30% of the epoch is its steady state
_WITHIN = 0.9


def _source(name: str, n: int) -> Any:
    if name == "shift":
        return ShiftSource(n)
    latency = 0.05 if name == "latency" else None
    return make_workload(name, batches=n, latency=latency).source


def converged_at(arrivals: np.ndarray, start: float, end: float) -> float:
    """Seconds from ``start`` until the rate stays within 90% of its steady state."""
    span = arrivals[(arrivals >= start) & (arrivals < end)]
    steady_from = end - _STEADY * (end - start)
    steady = np.count_nonzero(span >= steady_from) / (end - steady_from)
    edges = np.arange(start, end - _BIN_S / 2, _BIN_S)
    rates = np.histogram(span, bins=[*edges, end])[0] / np.diff([*edges, end])
    ok = rates >= _WITHIN * steady
    last_bad = np.flatnonzero(~ok)
    if last_bad.size == 0:
        return 0.0
    return float(edges[last_bad[-1]] + _BIN_S - start)


def one_epoch(source: Any, step: float, **options: Any) -> tuple[np.ndarray, Any]:
    """Arrival times of each batch of one epoch of a new loader, and its summary."""
    arrivals = np.empty(len(source))
    t0 = time.perf_counter()
    with stoker.Loader(source, timeout=120, **options) as loader:
        for k, _ in enumerate(loader):
            arrivals[k] = time.perf_counter() - t0
            if step:
                time.sleep(step)
        return arrivals, loader.stats.summary()


def run(name: str, seconds: float, step: float) -> str:
    n = int(_RATE[name] * seconds)
    source = _source(name, n)
    mp, w, q = _BEST[name]
    fixed, _ = one_epoch(source, step, workers=w, max_queue_size=q,
                         use_multiprocessing=mp)  # fmt: skip
    arrivals, s = one_epoch(source, step, workers="auto", max_queue_size="auto",
                            use_multiprocessing="auto")  # fmt: skip
    ratio = float(fixed[-1] / arrivals[-1])
    half = n // 2
    second = float((fixed[-1] - fixed[half]) / (arrivals[-1] - arrivals[half]))
    best = f"{'processes' if mp else 'threads'} w={w} q={q}"
    epoch = float(arrivals[-1])
    target = min(2.0, 0.1 * epoch)
    # shift: its first half is a phase of its own (the whole epoch's steady state
    # is the slow second half, which the fast first half would never "reach").
    shift = float(arrivals[n // 2]) if name == "shift" else epoch
    conv = converged_at(arrivals, 0.0, shift)
    last = s["tuning"][-1]["at_s"] if s["tuning"] else 0.0
    row = (
        f"| {name} | {epoch:.1f} s | {n / epoch:.0f} | {best}: {ratio:.2f} "
        f"({second:.2f}) | {conv:.2f} s | {target:.2f} s "
        f"| {'met' if conv <= target else 'not met'} | {len(s['tuning'])}, last at "
        f"{last:.2f} s | {s['mode']} {s['workers']}, queue {s['max_queue_size']} |"
    )
    if name == "shift":
        again = converged_at(arrivals, shift, epoch)
        rest = epoch - shift
        retarget = target  # the target is set by the first epoch
        row += (
            f"\n| shift, from the shift at {shift:.1f} s | {rest:.1f} s | "
            f"{(n - n // 2) / rest:.0f} | | {again:.2f} s | {retarget:.2f} s "
            f"| {'met' if again <= retarget else 'not met'} | | |"
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(_RATE))
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--step", type=float, default=0.002)
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, step "
        f"{args.step * 1e3:.0f} ms, load average before: {os.getloadavg()[0]:.2f}"
    )
    print("| workload | epoch | batches/s | auto / best fixed, whole epoch "
          "(second half) | converged | target | | decisions | ended at |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---|---|---|")
    for name in args.only.split(","):
        print(run(name, args.seconds, args.step), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
