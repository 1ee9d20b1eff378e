"""Where the time went: per-batch timings and the verdict every loader reports.

The consumer records one row per delivered batch (a few list appends, no locks: only
the consumer's thread writes). ``summary()`` turns them into the numbers users act on:
throughput, the fraction of time the training loop waited, time to first batch, and a
verdict (input-bound or compute-bound) with advice on what to change.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

# Below this fraction of time spent waiting, the input pipeline is not what limits
# training (the last few percent are the cost of handing batches over).
_INPUT_BOUND_WAIT_FRACTION = 0.10
# Thread workers that together burn at least this many CPU-seconds per second are
# computing in Python, not waiting on I/O: the GIL lets only one of them run at a
# time (about 1.0 at most), so more threads cannot help.
_GIL_BOUND_LOAD = 0.6


class LoaderStats:
    """Timings of one loader, over its whole life.

    Attributes:
        wait_s: per batch, seconds the consumer waited for it.
        produce_s: per batch, seconds a worker spent computing it.
        produce_cpu_s: per batch, CPU seconds of the worker thread (threads only; NaN
            where unknown).
        queue_depth: per batch, finished batches waiting at delivery (itself included).
        nbytes: per batch, bytes of array data.
    """

    def __init__(self, workers: int, mode: str) -> None:
        self.workers = workers
        self.mode = mode
        self.wait_s: list[float] = []
        self.produce_s: list[float] = []
        self.produce_cpu_s: list[float] = []
        self.queue_depth: list[int] = []
        self.nbytes: list[int] = []
        self.epochs = 0
        self.active_s = 0.0  # time spent inside iteration, summed over epochs
        self.time_to_first_batch_s: float | None = None
        self._epoch_start: float | None = None
        # issue 17: counters a backend keeps (Ray: retries, nodes), in summary().
        self.backend: dict[str, Any] = {}

    def epoch_started(self) -> None:
        self._epoch_start = time.perf_counter()

    def epoch_ended(self) -> None:
        if self._epoch_start is not None:
            self.active_s += time.perf_counter() - self._epoch_start
            self._epoch_start = None
            self.epochs += 1

    def record(
        self, wait: float, produce: float, cpu: float, depth: int, size: int
    ) -> None:
        """One delivered batch (called on the consumer's thread)."""
        if self.time_to_first_batch_s is None and self._epoch_start is not None:
            self.time_to_first_batch_s = time.perf_counter() - self._epoch_start
        self.wait_s.append(wait)
        self.produce_s.append(produce)
        self.produce_cpu_s.append(cpu)
        self.queue_depth.append(depth)
        self.nbytes.append(size)

    @property
    def batches(self) -> int:
        return len(self.wait_s)

    def _elapsed(self) -> float:
        running = (
            time.perf_counter() - self._epoch_start
            if self._epoch_start is not None
            else 0.0
        )
        return self.active_s + running

    def summary(self) -> dict[str, Any]:
        """Plain JSON-able numbers: throughput, waits, verdict and advice."""
        n = self.batches
        elapsed = self._elapsed()
        total_wait = float(sum(self.wait_s))
        out: dict[str, Any] = {
            "mode": self.mode,
            "workers": self.workers,
            "batches": n,
            "epochs": self.epochs,
            "elapsed_s": elapsed,
            "throughput_bps": n / elapsed if elapsed > 0 else 0.0,
            "bytes": int(sum(self.nbytes)),
            "mb_per_s": sum(self.nbytes) / elapsed / 1e6 if elapsed > 0 else 0.0,
            "wait_fraction": total_wait / elapsed if elapsed > 0 else 0.0,
            "time_to_first_batch_s": self.time_to_first_batch_s,
        }
        if self.backend:  # issue 17
            out["backend"] = dict(self.backend)
        if n:
            wait = np.asarray(self.wait_s)
            produce = np.asarray(self.produce_s)
            out.update(
                mean_wait_s=float(wait.mean()),
                p95_wait_s=float(np.percentile(wait, 95)),
                mean_produce_s=float(produce.mean()),
                p95_produce_s=float(np.percentile(produce, 95)),
                mean_queue_depth=float(np.mean(self.queue_depth)),
            )
        out["verdict"], out["advice"] = self._verdict(out)
        return out

    def _verdict(self, s: dict[str, Any]) -> tuple[str, str]:
        n = s["batches"]
        if n == 0:
            return "no data", "no batch has been delivered yet"
        elapsed = s["elapsed_s"]
        wait_fraction = s["wait_fraction"]
        step = max(elapsed - sum(self.wait_s), 1e-9) / n  # consumer time per batch
        produce = s["mean_produce_s"]
        needed = max(1, int(np.ceil(produce / step)))
        cpu = sum(c for c in self.produce_cpu_s if c == c)  # NaN: unknown
        gil_load = cpu / max(elapsed, 1e-12)
        if wait_fraction <= _INPUT_BOUND_WAIT_FRACTION:
            spare = (
                f"; about {needed} workers would keep up"
                if needed < self.workers
                else ""
            )
            return (
                "compute-bound",
                f"the training step is the limit (the loop waited "
                f"{wait_fraction:.0%} of the time){spare}",
            )
        if self.mode == "thread" and gil_load >= _GIL_BOUND_LOAD:
            return (
                "input-bound",
                f"the loop waited {wait_fraction:.0%} of the time and the workers "
                f"kept {gil_load:.2f} CPU busy computing in Python: threads share one "
                "GIL, so use use_multiprocessing=True",
            )
        return (
            "input-bound",
            f"the loop waited {wait_fraction:.0%} of the time: one batch takes "
            f"{produce * 1e3:.1f} ms to produce and {step * 1e3:.2f} ms to consume, "
            f"so about {needed} workers would keep up (now {self.workers})",
        )

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"<LoaderStats {s['batches']} batches, "
            f"{s['throughput_bps']:.1f} batches/s, "
            f"waited {s['wait_fraction']:.0%}: {s['verdict']}>"
        )
