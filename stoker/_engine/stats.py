"""Where the time went: per-batch timings and the verdict every loader reports.

The consumer records each delivered batch (only the consumer's thread writes). A
loader may run for days, so nothing here grows with the number of batches:

- totals are running sums (batches, waits, produce and CPU time, queue depth,
  bytes), so throughput, the wait fraction and the verdict are exact;
- percentiles come from a reservoir of ``_RESERVOIR`` batches per series
  (Vitter's algorithm R, with a private generator: seeding rule 6): exact up to that
  many batches, a uniform sample after;
- the last epoch's figures are kept beside the totals (``summary()["epoch"]``), so a
  loop that prints ``loader.stats`` each epoch sees that epoch, not a running total;
- length changes between epochs are counted, with the last few kept.

The per-batch record of every batch, for charts, is the observers' business (the
tracker stores them): see ``stoker.track``.
"""

from __future__ import annotations

import collections
import copy
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Below this fraction of time spent waiting, the input pipeline is not what limits
# training (the last few percent are the cost of handing batches over).
_INPUT_BOUND_WAIT_FRACTION = 0.10
# Thread workers that together burn at least this many CPU-seconds per second are
# computing in Python, not waiting on I/O: the GIL lets only one of them run at a
# time (about 1.0 at most), so more threads cannot help.
_GIL_BOUND_LOAD = 0.6
# Batches kept per series for percentiles: 4096 floats is 32 KB, and a p95 from that
# many samples is within about a percentile point of the true one.
_RESERVOIR = 4096
_LENGTH_CHANGES_KEPT = 8
# Tuning decisions kept for summary()["tuning"]: the controller settles in a handful;
# a source whose speed keeps changing could make more, and only the last are kept.
_DECISIONS_KEPT = 256
# Advice never names more threads than this (the autotuner's own ceiling).
_MAX_ADVISED_THREADS = 64
# Workers whose CPU time is at least this share of their produce time are computing,
# so processes beyond the cores cannot help them.
_CPU_BOUND_SHARE = 0.5


class _Reservoir:
    """A uniform sample of at most ``_RESERVOIR`` batches' ``(wait, produce)``.

    Li's algorithm L: once the reservoir is full, it draws how many batches to skip
    before the next replacement, so a batch that is not kept costs one comparison
    (drawing a random index for every batch cost about 1 us per batch).
    """

    def __init__(self, rand: random.Random) -> None:
        self.pairs: list[tuple[float, float]] = []
        self._rand = rand
        self._w = 1.0
        self.next = _RESERVOIR + 1  # the batch number (from 1) that is kept next

    def add(self, seen: int, wait: float, produce: float) -> None:
        """Keep the ``seen``-th batch (from 1); call only when ``seen == self.next``
        or the reservoir is not full yet."""
        if seen <= _RESERVOIR:
            self.pairs.append((wait, produce))
            if seen == _RESERVOIR:
                self._skip(seen)
            return
        self.pairs[self._rand.randrange(_RESERVOIR)] = (wait, produce)
        self._skip(seen)

    def _skip(self, seen: int) -> None:
        rand = self._rand.random
        self._w *= math.exp(math.log(1.0 - rand()) / _RESERVOIR)
        gap = math.floor(math.log(1.0 - rand()) / math.log(1.0 - self._w))
        self.next = seen + gap + 1

    def series(self, which: int) -> list[float]:
        """The sampled waits (0) or produce times (1)."""
        return [p[which] for p in self.pairs]


class _Totals:
    """Running sums over a span of batches (the whole life, or one epoch)."""

    def __init__(self) -> None:
        self.batches = 0
        self.wait_s = 0.0
        self.produce_s = 0.0
        self.cpu_s = 0.0  # NaN CPU times (unknown) are left out
        self.depth = 0
        self.nbytes = 0
        self.elapsed_s = 0.0

    def add(
        self, wait: float, produce: float, cpu: float, depth: int, size: int
    ) -> None:
        self.batches += 1
        self.wait_s += wait
        self.produce_s += produce
        if cpu == cpu:
            self.cpu_s += cpu
        self.depth += depth
        self.nbytes += size


class LoaderStats:
    """Timings of one loader: totals over its life and the last epoch's figures.

    Attributes:
        workers: the worker count in force.
        mode: ``"thread"`` or ``"process"``.
        epochs: epochs finished (or cut short).
        time_to_first_batch_s: from the first epoch's start to its first batch.
        length_changes: how many times the source's length changed between epochs.
    """

    def __init__(
        self, workers: int, mode: str, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._clock = clock  # a test (or a simulation) may drive time itself
        self.workers = workers
        self.mode = mode
        self.epochs = 0
        self.time_to_first_batch_s: float | None = None
        self.length_changes = 0
        self._recent_changes: collections.deque[dict[str, int]] = collections.deque(
            maxlen=_LENGTH_CHANGES_KEPT
        )
        self._total = _Totals()
        self._epoch_base = _Totals()  # the totals when the running epoch started
        self._last: _Totals | None = None
        rand = random.Random(0)
        self._samples = _Reservoir(rand)
        self._epoch_start: float | None = None
        self._first_start: float | None = None  # decisions' at_s counts from here
        self.tuning: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_DECISIONS_KEPT
        )
        self.max_queue_size: int | None = None  # in force, when a governor sets it
        self.cores: int | None = None  # usable cores and the memory budget, when
        self.max_memory: int | None = None  # known: they bound the advice
        # issue 17: counters a backend keeps (Ray: retries, nodes), in summary().
        self.backend: dict[str, Any] = {}

    # -- recording (the consumer's thread) ------------------------------------------
    def epoch_started(self) -> None:
        self._epoch_start = self._clock()
        if self._first_start is None:
            self._first_start = self._epoch_start
        self._epoch_base = copy.copy(self._total)

    def epoch_ended(self) -> None:
        if self._epoch_start is None:
            return
        spent = self._clock() - self._epoch_start
        self._epoch_start = None
        self._total.elapsed_s += spent
        self._last = self._since(self._epoch_base)
        self._last.elapsed_s = spent
        self.epochs += 1

    def _since(self, base: _Totals) -> _Totals:
        """The totals of the batches recorded after ``base`` was copied."""
        span, t = _Totals(), self._total
        span.batches = t.batches - base.batches
        span.wait_s = t.wait_s - base.wait_s
        span.produce_s = t.produce_s - base.produce_s
        span.cpu_s = t.cpu_s - base.cpu_s
        span.depth = t.depth - base.depth
        span.nbytes = t.nbytes - base.nbytes
        return span

    def record(
        self, wait: float, produce: float, cpu: float, depth: int, size: int
    ) -> None:
        """One delivered batch (the per-batch path: one sum update, one sample)."""
        if self.time_to_first_batch_s is None and self._epoch_start is not None:
            self.time_to_first_batch_s = self._clock() - self._epoch_start
        t = self._total  # _Totals.add, inlined: this runs once per batch
        t.batches += 1
        t.wait_s += wait
        t.produce_s += produce
        if cpu == cpu:  # NaN: unknown
            t.cpu_s += cpu
        t.depth += depth
        t.nbytes += size
        samples = self._samples
        if t.batches <= _RESERVOIR or t.batches == samples.next:
            samples.add(t.batches, wait, produce)

    def length_changed(self, epoch: int, old: int, new: int) -> None:
        """The source's length was ``old`` and is ``new`` from ``epoch`` on."""
        self.length_changes += 1
        self._recent_changes.append({"epoch": epoch, "from": old, "to": new})

    def decided(self, at: int, setting: str, old: Any, new: Any, why: str) -> None:
        """A tuning decision (``summary()["tuning"]``)."""
        self.tuning.append(
            {
                "at_batch": at,
                "at_s": round(self._clock() - (self._first_start or self._clock()), 3),
                "setting": setting,
                "from": old,
                "to": new,
                "why": why,
            }
        )

    # -- reading ---------------------------------------------------------------------
    def snapshot(self) -> tuple[int, float, float, float, int, float]:
        """Running totals: batches, wait, produce, CPU seconds, bytes, elapsed."""
        t = self._total
        elapsed = t.elapsed_s + self._running_s()
        return (t.batches, t.wait_s, t.produce_s, t.cpu_s, t.nbytes, elapsed)

    def produce_spread(self) -> tuple[float, float]:
        """Mean and p95 of the produce times sampled so far (0 before any)."""
        values = self._samples.series(1)
        if not values:
            return 0.0, 0.0
        return float(np.mean(values)), float(np.percentile(values, 95))

    @property
    def batches(self) -> int:
        """Batches delivered over the loader's life."""
        return self._total.batches

    def _running_s(self) -> float:
        if self._epoch_start is None:
            return 0.0
        return self._clock() - self._epoch_start

    def summary(self) -> dict[str, Any]:
        """Plain JSON-able numbers: totals, the last epoch, the verdict and advice.

        The top-level figures cover the loader's whole life; ``"epoch"`` has the same
        figures for the epoch running now, or else the last one finished.
        """
        total = self._total
        out: dict[str, Any] = {
            "mode": self.mode,
            "workers": self.workers,
            "max_queue_size": self.max_queue_size,
            "epochs": self.epochs,
            **_figures(total, total.elapsed_s + self._running_s()),
            "time_to_first_batch_s": self.time_to_first_batch_s,
        }
        if self.backend:  # counters of the backend (Ray: retries, nodes)
            out["backend"] = dict(self.backend)
        if total.batches:
            wait = np.asarray(self._samples.series(0))
            produce = np.asarray(self._samples.series(1))
            out.update(
                mean_wait_s=total.wait_s / total.batches,
                p95_wait_s=float(np.percentile(wait, 95)),
                mean_produce_s=total.produce_s / total.batches,
                p95_produce_s=float(np.percentile(produce, 95)),
                mean_queue_depth=total.depth / total.batches,
            )
        out["epoch"] = self._epoch_figures()
        out["length_changes"] = list(self._recent_changes)
        out["tuning"] = list(self.tuning)
        out["verdict"], out["advice"] = self._verdict(total, out["elapsed_s"])
        return out

    def _epoch_figures(self) -> dict[str, Any]:
        if self._epoch_start is not None:
            span = self._since(self._epoch_base)
            elapsed, index = self._running_s(), self.epochs
        elif self._last is not None:
            span, elapsed, index = self._last, self._last.elapsed_s, self.epochs - 1
        else:
            return {}
        return {"index": index, **_figures(span, elapsed)}

    def _verdict(self, t: _Totals, elapsed: float) -> tuple[str, str]:
        n = t.batches
        if n == 0:
            return "no data", "no batch has been delivered yet"
        wait_fraction = t.wait_s / elapsed if elapsed > 0 else 0.0
        step = max(elapsed - t.wait_s, 1e-9) / n  # consumer time per batch
        produce = t.produce_s / n
        needed = max(1, math.ceil(produce / step))
        gil_load = t.cpu_s / max(elapsed, 1e-12)
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
        if t.produce_s * 2 < elapsed:
            # The pool's whole work fits in half of one worker: the loop waits for
            # the hand-off (tiny workload: 80% waits, workers busy 18%).
            busy = t.produce_s / (elapsed * self.workers)
            return (
                "input-bound",
                f"the loop waited {wait_fraction:.0%} of the time for the hand-off, "
                f"not for the workers (busy {busy:.0%}): a batch takes "
                f"{produce * 1e6:.1f} us to make, less than passing it to the loop "
                "costs; larger batches spread that cost, and a longer queue "
                "(max_queue_size=32) with fewer workers makes it smaller",
            )
        cap, limit = self._advice_cap(t)
        advised = min(needed, cap)
        if needed <= self.workers:
            mean, p95 = self.produce_spread()
            return (
                "input-bound",
                f"the loop waited {wait_fraction:.0%} of the time although "
                f"{self.workers} workers keep up on average (about {needed} needed): "
                f"the waits come from slow batches (p95 {p95 * 1e3:.1f} ms against a "
                f"mean of {mean * 1e3:.1f} ms; a larger max_queue_size absorbs them) "
                "or from epoch starts (short epochs)",
            )
        if advised <= self.workers:
            return (
                "input-bound",
                f"the loop waited {wait_fraction:.0%} of the time with {self.workers} "
                f"workers, already as many as {limit} allow ({needed} would keep "
                "up): make source[i] cheaper or the batches smaller",
            )
        short = "" if advised == needed else f" (capped by {limit}: {needed} needed)"
        return (
            "input-bound",
            f"the loop waited {wait_fraction:.0%} of the time: one batch takes "
            f"{produce * 1e3:.1f} ms to produce and {step * 1e3:.2f} ms to consume, "
            f"so about {advised} workers would keep up (now {self.workers}){short}; "
            "workers='auto' finds the count while training runs",
        )

    def _advice_cap(self, t: _Totals) -> tuple[int, str]:
        """The most workers worth advising, and what bounds them."""
        # Process workers that compute cannot outrun the cores; ones that wait (I/O,
        # a remote read) can, like threads.
        computing = t.produce_s > 0 and t.cpu_s / t.produce_s >= _CPU_BOUND_SHARE
        if self.mode == "process" and computing:
            cap, limit = self.cores or 1 << 30, f"{self.cores} usable cores"
        else:
            cap, limit = _MAX_ADVISED_THREADS, f"{_MAX_ADVISED_THREADS} workers"
        if self.max_memory and t.nbytes:
            per = t.nbytes / t.batches
            by_memory = max(1, int(self.max_memory // per) - 1)
            if by_memory < cap:
                cap, limit = by_memory, f"max_memory={self.max_memory / 1e6:.0f} MB"
        return cap, limit

    def __repr__(self) -> str:
        s = self.summary()
        e = s["epoch"]
        head = "<LoaderStats"
        if e:
            head += (
                f" epoch {e['index']}: {e['batches']} batches, "
                f"{e['throughput_bps']:.1f} batches/s, waited {e['wait_fraction']:.0%};"
            )
        return (
            f"{head} total: {s['batches']} batches in {s['epochs']} epochs, "
            f"waited {s['wait_fraction']:.0%}: {s['verdict']}>"
        )


def _figures(t: _Totals, elapsed: float) -> dict[str, Any]:
    return {
        "batches": t.batches,
        "elapsed_s": elapsed,
        "throughput_bps": t.batches / elapsed if elapsed > 0 else 0.0,
        "bytes": t.nbytes,
        "mb_per_s": t.nbytes / elapsed / 1e6 if elapsed > 0 else 0.0,
        "wait_fraction": t.wait_s / elapsed if elapsed > 0 else 0.0,
    }
