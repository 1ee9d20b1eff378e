# Run: .venv/bin/python benchmarks/autotune_tiny.py   (about 2 min; --rounds N)
# Last run: see docs/benchmarks.md, "Autotuning (issue 14)", tiny.
"""What ``"auto"`` costs per batch on the ``tiny`` workload, interleaved (issue 14).

The target: on ``tiny`` (a trivial batch: the loader's own cost), auto costs at most
2% over the best fixed setting. A trivial batch costs 6-14 us here, and this
machine's speed drifts by more than 2% from one minute to the next (the same fixed
setting read 76k and 146k batches/s in two runs of ``autotune.py`` an hour apart),
so settings measured one after another cannot show 2%. Here every round runs each
setting once, in a new loader, in an order that rotates from round to round, and
each setting's figure is its median over the rounds. A run is four epochs of
``--batches``; the figure is the fourth (auto has settled: the queue goes to 32 at
0.15 s, and 2 workers to 1 after three windows in which the loop waited for the
hand-off rather than for them, about 0.6 s in).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import stoker
from stoker.bench.workloads import make_workload

_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("auto", {"workers": "auto", "max_queue_size": "auto",
              "use_multiprocessing": "auto"}),
    ("threads w=1 q=32", {"workers": 1, "max_queue_size": 32}),
    ("threads w=2 q=32", {"workers": 2, "max_queue_size": 32}),
    ("threads w=4 q=32", {"workers": 4, "max_queue_size": 32}),
    ("threads w=2 q=10", {"workers": 2, "max_queue_size": 10}),
]  # fmt: skip


def once(source: Any, options: dict[str, Any]) -> tuple[float, str]:
    """Microseconds per batch in the fourth epoch, and the settings it ended at."""
    with stoker.Loader(source, **options) as loader:
        for _ in range(3):
            for _ in loader:
                pass
        t0 = time.perf_counter()
        for _ in loader:
            pass
        per_batch = (time.perf_counter() - t0) / len(source) * 1e6
        s = loader.stats.summary()
    return per_batch, f"{s['mode']} {s['workers']}, queue {s['max_queue_size']}"


# --parts: what each "auto" setting costs alone, against the fixed setting auto
# ends at (1 thread, queue 32).
_PARTS: list[tuple[str, dict[str, Any]]] = [
    ("auto", _SETTINGS[0][1]),
    ("threads w=1 q=32", {"workers": 1, "max_queue_size": 32}),
    ("w=1 q=32, use_multiprocessing=auto", {"workers": 1, "max_queue_size": 32,
                                            "use_multiprocessing": "auto"}),
    ("workers=auto q=32", {"workers": "auto", "max_queue_size": 32}),
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--parts", action="store_true", help="auto's settings one by one")
    p.add_argument("--batches", type=int, default=40_000)
    args = p.parse_args()
    settings = _PARTS if args.parts else _SETTINGS
    source = make_workload("tiny", batches=args.batches).source
    times: dict[str, list[float]] = {name: [] for name, _ in settings}
    ended: dict[str, str] = {}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} "
          f"rounds of {args.batches} batches; load average before: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    for r in range(args.rounds):
        k = r % len(settings)
        for name, options in settings[k:] + settings[:k]:
            us, ended[name] = once(source, options)
            times[name].append(us)
    medians = {name: statistics.median(v) for name, v in times.items()}
    fixed = {n: m for n, m in medians.items() if n != "auto"}
    best = min(fixed, key=fixed.__getitem__)
    if args.parts:  # each part against the fixed setting auto ends at
        best = "threads w=1 q=32"
    print("| setting | us per batch, median (min-max) | / best fixed | ended at |")
    print("|---|---|---:|---|")
    for name, _ in settings:
        v = times[name]
        mark = " (best fixed)" if name == best else ""
        print(
            f"| {name}{mark} | {medians[name]:.2f} ({min(v):.2f}-{max(v):.2f}) | "
            f"{medians[name] / medians[best]:.3f} | {ended[name]} |"
        )
    print(f"auto costs {medians['auto'] / medians[best] - 1:+.1%} per batch over "
          f"the best fixed setting ({best}); load average after: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
