# Run: KERAS_BACKEND=torch .venv/bin/python benchmarks/autotune.py --repeat 3
#      (--repeat 1: 3 min on 2 vCPUs, so about 9 min; --quick: half the batches;
#      --only latency,tiny to pick workloads; --no-peers to skip Keras and torch).
# Last run (2026-11-29 14:47, --repeat 1, 2 vCPUs, quiet: load 0.6; the whole
# table in docs/benchmarks.md), batches/s over two epochs / best fixed point, and
# (epoch 2 alone / the best's epoch 2):
#   auto: latency 0.85 (0.99), shift 0.70 (1.01), files 0.99 (0.87), cpu 0.73
#   (0.98; processes auto 0.75), big 1.00 (1.02), tiny 0.82 (1.00).
#   Keras PyDataset defaults / workers=2: latency 0.04 / 0.09, cpu 0.43 / 0.47;
#   torch DataLoader num_workers=0 / 2: latency 0.04 / 0.09, cpu 0.40 / 0.45.
"""workers="auto" against the best fixed setting of a sweep, measured in the same run.

Each workload runs two epochs behind a training loop that takes ``--step`` seconds
per batch (a sleep, as a GPU step leaves the CPU free). For every fixed point of the
sweep and for ``workers="auto", max_queue_size="auto", use_multiprocessing="auto"``
(and, for ``cpu`` and ``big``, the same on processes), the script reports batches
per second over both epochs (the first includes auto's convergence), the second
epoch alone, and for auto the time and batch of its last decision (convergence) and
the settings it ended with.

For comparison, in the same run and behind the same training step: Keras
``PyDataset`` at its defaults (``workers=1``, threads: Keras' serial path) and at
``workers=cores`` (threads; processes for ``cpu``, the GIL-bound one, as the seed's
article advises), and torch ``DataLoader`` at its default (``num_workers=0``) and at
``num_workers=cores``, both through ``stoker.bench.peers`` (each epoch starts and stops
its workers, as ``model.fit`` and a plain torch loop do). ``--no-peers`` skips them.
The summary table at the end gives, per workload, auto's throughput over the best
fixed stoker setting's, and each peer's over the same best.

Workloads: stoker bench's built-ins (``latency`` at 50 ms, ``cpu``, ``big``,
``files``, ``tiny``) and ``shift``, a source that changes speed halfway through each
epoch (5 ms per batch, then 40 ms), as a user's source might when it reaches data
on a slower disk. ``cpu`` holds the GIL: ``use_multiprocessing="auto"`` moves it to
processes in the middle of its first epoch, once a window has shown it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import stoker
from stoker.bench.workloads import make_workload

# Sweep points per workload: (mode, workers); the queue is swept at the best of them.
_SWEEP: dict[str, list[tuple[bool, int]]] = {
    "latency": [(False, w) for w in (4, 8, 16, 32, 64)],
    "shift": [(False, w) for w in (2, 4, 8, 16, 32)],
    "files": [(False, w) for w in (1, 2, 4, 8)] + [(True, 2)],
    "cpu": [(False, 1), (False, 2), (True, 1), (True, 2)],
    "big": [(False, 1), (False, 2), (False, 4), (True, 2)],
    "tiny": [(False, 1), (False, 2), (False, 4)],
}
_QUEUES = (2, 32)
# Batches per epoch: each fixed run at its best point lasts about a second.
_BATCHES = {"latency": 240, "shift": 160, "files": 48, "cpu": 48, "big": 96}
_TINY_BATCHES = 20000
_REPEAT = 1  # --repeat
# The peers run where the issue asks for them; tiny measures stoker's own overhead.
_PEER_WORKLOADS = ("latency", "shift", "files", "cpu", "big")
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


class ShiftSource:
    """5 ms per batch for the first half of each epoch, 40 ms for the second half."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        import numpy as np

        time.sleep(0.005 if index < self.length // 2 else 0.04)
        return np.full((128, 784), index % 256, dtype=np.float32)


def _source(name: str, quick: bool) -> Any:
    n = _BATCHES.get(name, _TINY_BATCHES)
    if quick:
        n //= 2
    if name == "shift":
        return ShiftSource(n)
    latency = 0.05 if name == "latency" else None
    return make_workload(name, batches=n, latency=latency).source


def _run(source: Any, step: float, **options: Any) -> dict[str, Any]:
    """The median (by whole-run throughput) of ``_REPEAT`` runs of one setting."""
    runs = sorted((_once(source, step, **options) for _ in range(_REPEAT)),
                  key=lambda r: r["all_bps"])  # fmt: skip
    return runs[len(runs) // 2]


def _once(source: Any, step: float, **options: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    with stoker.Loader(source, timeout=120, **options) as loader:
        for _ in loader:
            if step:
                time.sleep(step)
        t1 = time.perf_counter()
        for _ in loader:
            if step:
                time.sleep(step)
        t2 = time.perf_counter()
        s = loader.stats.summary()
    n = len(source)
    last = s["tuning"][-1] if s["tuning"] else None
    return {
        "all_bps": 2 * n / (t2 - t0),
        "epoch2_bps": n / (t2 - t1),
        "settled_s": last["at_s"] if last else 0.0,
        "settled_batch": last["at_batch"] if last else 0,
        "first_epoch_s": t1 - t0,
        "end": f"{s['mode']} {s['workers']}",
        "decisions": len(s["tuning"]),
    }


def _peer_once(runner: Any, source: Any, step: float, setting: Any) -> dict[str, Any]:
    """Two epochs of a peer, each its own ``iterate`` (the peer's workers start and
    stop per epoch, as in ``model.fit`` and a torch loop without persistent workers)."""
    times = [time.perf_counter()]
    for _ in range(2):
        for _ in runner.iterate(source, setting, {}):
            if step:
                time.sleep(step)
        times.append(time.perf_counter())
    n = len(source)
    return {"all_bps": 2 * n / (times[2] - times[0]),
            "epoch2_bps": n / (times[2] - times[1])}  # fmt: skip


def _peers(
    name: str, source: Any, step: float
) -> list[tuple[str, dict[str, Any] | None]]:
    """Keras PyDataset and torch DataLoader at their defaults and at workers=cores."""
    from stoker.bench.peers import KerasRunner, TorchRunner
    from stoker.bench.runners import Setting

    keras_mode = "process" if name == "cpu" else "thread"  # the article's advice
    plan = [
        (KerasRunner(), "keras PyDataset defaults (workers=1, threads)",
         Setting("keras", "thread", 1, 10)),
        (KerasRunner(), f"keras PyDataset workers={_CORES} ({keras_mode}es)"
         if keras_mode == "process" else f"keras PyDataset workers={_CORES} (threads)",
         Setting("keras", keras_mode, _CORES, 10)),
        (TorchRunner(), "torch DataLoader default (num_workers=0)",
         Setting("torch", "process", 0, 10)),
        (TorchRunner(), f"torch DataLoader num_workers={_CORES}",
         Setting("torch", "process", _CORES, 10)),
    ]  # fmt: skip
    out = []
    for runner, label, setting in plan:
        status = runner.availability()
        if not status.available:
            print(f"# {label}: not run: {status.message}", file=sys.stderr)
            out.append((label, None))  # keeps its column of the summary
            continue
        runs = [_peer_once(runner, source, step, setting) for _ in range(_REPEAT)]
        runs.sort(key=lambda r: r["all_bps"])
        out.append((label, runs[len(runs) // 2]))
    return out


def _label(mp: bool, workers: Any, queue: Any) -> str:
    return f"{'processes' if mp else 'threads'} w={workers} q={queue}"


def bench(
    name: str, quick: bool, step: float, peers: bool, summary: list[str]
) -> list[str]:
    """The rows of one workload; appends its line of the summary table."""
    source = _source(name, quick)
    step = 0.0 if name == "tiny" else step
    fixed: list[tuple[str, dict[str, Any]]] = []
    for mp, w in _SWEEP[name]:
        fixed.append((_label(mp, w, 10), _run(source, step, workers=w,
                                              use_multiprocessing=mp)))  # fmt: skip
    best_label, best = max(fixed, key=lambda r: r[1]["all_bps"])
    mp, w = _SWEEP[name][[f[0] for f in fixed].index(best_label)]
    for q in _QUEUES:
        fixed.append((_label(mp, w, q), _run(source, step, workers=w,
                      use_multiprocessing=mp, max_queue_size=q)))  # fmt: skip
    best_label, best = max(fixed, key=lambda r: r[1]["all_bps"])
    auto = {"workers": "auto", "max_queue_size": "auto"}
    autos = [("auto", _run(source, step, use_multiprocessing="auto", **auto))]
    if name in ("cpu", "big"):
        autos.append(
            ("processes, auto", _run(source, step, use_multiprocessing=True, **auto))
        )
    others = _peers(name, source, step) if peers and name in _PEER_WORKLOADS else []
    rows = []
    ran = [(label, r) for label, r in others if r is not None]
    for label, r in fixed + ran:
        mark = " (best)" if label == best_label else ""
        rows.append(
            f"| {name} | {label}{mark} | {r['all_bps']:.1f} | {r['epoch2_bps']:.1f} "
            f"| {r['all_bps'] / best['all_bps']:.2f} | | |"
        )
    for label, r in autos:
        rows.append(
            f"| {name} | **{label}** -> {r['end']} | {r['all_bps']:.1f} "
            f"| {r['epoch2_bps']:.1f} | **{r['all_bps'] / best['all_bps']:.2f}** "
            f"| {r['settled_s']:.2f} s (batch {r['settled_batch']}, "
            f"{r['settled_s'] / r['first_epoch_s']:.0%} of epoch 1) "
            f"| {r['decisions']} |"
        )
    ratios = [f"{r['all_bps'] / best['all_bps']:.2f} ({r['end']})" for _, r in autos]
    # Peers in plan order: keras defaults, keras cores, torch default, torch cores.
    cells = [
        "not run" if r is None else f"{r['all_bps'] / best['all_bps']:.2f}"
        for _, r in others
    ]
    cells += [""] * (4 - len(cells))
    summary.append(
        f"| {name} | {best_label} | {best['all_bps']:.1f} | "
        f"{autos[0][1]['all_bps']:.1f} | **{ratios[0]}** | "
        f"{ratios[1] if len(ratios) > 1 else ''} | {' | '.join(cells)} |"
    )
    return rows


def trace_cost(repeat: int = 5, n: int = 20000) -> list[str]:
    """Per-batch cost of trace= on the tiny workload: on minus off, same run."""
    import statistics
    import tempfile

    source = _source("tiny", False)
    off, on = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat):  # alternate, so that load changes hit both alike
            for traced, out in ((False, off), (True, on)):
                path = os.path.join(tmp, f"{k}.json") if traced else None
                t0 = time.perf_counter()
                with stoker.Loader(source, workers=1, trace=path) as loader:
                    for _ in loader:
                        pass
                    t1 = time.perf_counter()  # before close() writes the file
                out.append((t1 - t0) / n)
    a, b = statistics.median(off), statistics.median(on)
    return [
        f"| tiny | trace off | {a * 1e6:.2f} us/batch | | | | |",
        f"| tiny | trace on (ring of 10,000) | {b * 1e6:.2f} us/batch | | "
        f"+{(b - a) * 1e6:.2f} us | | |",
    ]


def overhead(n: int = 200_000, repeat: int = 5) -> list[str]:
    """What the governor adds per batch on the consumer's thread, in isolation.

    ``Governor.record`` (stats + checks, + trace when on) against ``stats.record``
    alone, the call the loader made before issue 14, over the same fake result.
    """
    import statistics

    from stoker._engine.govern import Governor
    from stoker._engine.run import Result
    from stoker._engine.stats import LoaderStats
    from stoker._options import LoaderOptions

    class _Feed:
        mode = "thread"

        def resize(self, workers: int, budget: int) -> None:
            pass

    rows = []
    settings: list[tuple[str, dict[str, Any]]] = [
        ("fixed settings", {"workers": 4}),
        ("workers/max_queue_size auto", {"workers": "auto", "max_queue_size": "auto"}),
        ("fixed + trace", {"workers": 4, "trace": os.devnull}),
    ]
    for label, options in settings:
        added = []
        for _ in range(repeat):
            opts = LoaderOptions(**options)
            stats = LoaderStats(opts.workers, opts.mode)
            gov = Governor(opts, stats, _Feed(), "bench")
            result = Result(0, None, 0.001, 0.0, 1000, None, 0, 0)
            stats.epoch_started()
            t0 = time.perf_counter()
            for _ in range(n):
                stats.record(0.0, 0.001, 0.0, 1, 1000)
            t1 = time.perf_counter()
            for _ in range(n):
                gov.record(result, 0.0, 1, 0)
            t2 = time.perf_counter()
            added.append(((t2 - t1) - (t1 - t0)) / n)
            gov.traces.clear()  # nothing to write
        rows.append(
            f"| per batch | {label}: Governor.record - stats.record | "
            f"+{statistics.median(added) * 1e6:.2f} us | | | | |"
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="half the batches")
    p.add_argument("--only", default="", help="comma list of workloads")
    p.add_argument("--step", type=float, default=0.002, help="training step (s)")
    p.add_argument("--repeat", type=int, default=1, help="runs per setting (median)")
    p.add_argument("--no-peers", action="store_true", help="skip Keras and torch")
    args = p.parse_args()
    global _REPEAT
    _REPEAT = max(1, args.repeat)
    extra = ["trace", "overhead"]
    picked = args.only.split(",") if args.only else [*_SWEEP, *extra]
    names = [n for n in [*_SWEEP, *extra] if n in picked]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, step "
        f"{args.step * 1e3:g} ms, median of {_REPEAT}, load average before: "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(
        "| workload | setting | batches/s (2 epochs) | epoch 2 | vs best "
        "| last decision | decisions |"
    )
    print("|---|---|---:|---:|---:|---|---:|")
    summary: list[str] = []
    for name in names:
        if name in extra:
            rows = trace_cost() if name == "trace" else overhead()
        else:
            rows = bench(name, args.quick, args.step, not args.no_peers, summary)
        for row in rows:
            print(row, flush=True)
    if summary:
        print(
            "\nSummary: throughput over both epochs; ratios are to the best fixed "
            "stoker setting of the same run (1.00 = as fast).\n"
        )
        print(
            "| workload | best fixed setting | its batches/s | auto batches/s "
            "| **auto / best** (ended) | processes, auto / best "
            f"| Keras defaults / best | Keras workers={_CORES} / best "
            f"| torch default (0) / best | torch workers={_CORES} / best |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for line in summary:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
