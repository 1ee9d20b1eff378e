"""Between batches, on the consumer's thread: memory budget, autotuning, trace, advice.

The rule: the loader hands every delivered batch to :meth:`Governor.record`, which
records it in the stats and, only at *check points*, looks at the figures. With fixed
settings the check points are batches 1, 2, 4, 8, ... (the memory budget against the
measured batch size, and the one-time warning when the loop waits); with ``"auto"``
settings about 16 check points fall in each window (every batch for slow sources,
every few dozen for cheap ones), and a window of measurements goes to the
controller (``tune.py``) once it spans ``WINDOW_S`` and ``WINDOW_BATCHES``. So the
per-batch cost is one counter compare; everything else happens a few hundred times
a second at most.

Changes take effect through the backend's ``resize(workers, budget)`` between two
batches. Which worker computes a batch never changes its bytes (every batch is a
function of ``(seed, epoch, index)``), so the controller cannot change the output:
only when it arrives.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from stoker._engine import tune
from stoker._engine.run import Result
from stoker._engine.stats import LoaderStats
from stoker._engine.trace import TraceRing
from stoker._errors import ConfigError
from stoker._options import (
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MEMORY_FRACTION,
    LoaderOptions,
)

_log = logging.getLogger("stoker")
# A window the controller can judge: long enough that one slow batch is noise...
WINDOW_S = 0.15
WINDOW_BATCHES = 6
# ...and a window that ends anyway, for sources slower than WINDOW_BATCHES per 2 s.
MAX_WINDOW_S = 2.0
# With fixed settings, warn once when the loop waited this share of the time...
WARN_WAIT_FRACTION = 0.30
# ...measured over at least this long (the first batches include worker start-up).
WARN_AFTER_S = 1.0
# /proc/stat counts every CPU of the machine.
_CPUS = os.cpu_count() or 1
# Most batches between two checks of an "auto" loader.
_MAX_STRIDE = 256
# Without /proc/meminfo, the budget assumes this much memory is available.
_FALLBACK_AVAILABLE = 4 * 1024**3


def memory_budget(max_memory: int | float | None) -> int:
    """``max_memory`` in bytes: bytes as given, or a fraction of available memory."""
    if isinstance(max_memory, int):
        return max_memory
    available = tune.available_memory() or _FALLBACK_AVAILABLE
    fraction = DEFAULT_MEMORY_FRACTION if max_memory is None else max_memory
    return int(available * fraction)


class Governor:
    """Applies the memory budget and the autotuner to one loader (module docstring).

    Args:
        opts: the loader's options.
        stats: the loader's stats (the governor updates ``workers``, ``mode`` and
            ``tuning``).
        feed: the loader's feed; its ``resize(workers, budget)`` and, for
            ``use_multiprocessing="auto"``, ``switch_mode``, ``mode`` and
            ``can_cross`` are used where it has them (generator streams have none).
        name: the loader's id, for messages and the trace.
        clock: the clock windows are measured with.
    """

    def __init__(
        self,
        opts: LoaderOptions,
        stats: LoaderStats,
        feed: Any,
        name: str,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._clock = clock  # a test drives windows with the stats' fake clock
        self._opts = opts
        self._stats = stats
        self._feed = feed
        self._resize: Callable[[int, int], None] | None = getattr(feed, "resize", None)
        resize = self._resize
        self._name = name
        self._switching = False  # a move waits for the old workers' last batch
        self.workers = opts.workers
        self.queue = opts.max_queue_size
        self.max_memory = memory_budget(opts.max_memory)
        self.cores = tune.usable_cores()
        stats.cores, stats.max_memory = self.cores, self.max_memory
        stats.max_queue_size = self.queue
        self._auto = bool(opts.auto) and resize is not None
        self._controller = tune.Controller(
            opts.mode,
            self.workers,
            cores=self.cores,
            max_memory=self.max_memory,
            queue=self.queue,
            can_switch="use_multiprocessing" in opts.auto
            and hasattr(feed, "switch_mode"),
        )
        self._n = 0
        self._next = 1
        self._stride = 1  # auto: batches between checks, from the last window
        self._window: tuple[float, tuple[float, ...]] | None = None
        self._cpu = (0.0, 0.0)  # the machine's (idle, total) at the window's start
        self._window_epochs = 0  # epochs begun when the window started
        self._warned = False
        self._budget = self.queue + self.workers
        # Until the first batch shows its size, only the workers' batches may be out:
        # the queue's run-ahead could pass max_memory before the budget is known
        # (the big workload's 9.6 MB batches with max_memory of 8: 12 were out).
        self._sized = False
        if self._resize is not None:
            self._resize(self.workers, self.workers)
        self.traces: list[tuple[TraceRing, str | os.PathLike[str]]] = []
        if opts.trace is not None:
            self.start_trace(opts.trace, opts.trace_batches)

    # -- the consumer's per-batch call --------------------------------------------
    def record(self, result: Result, wait: float, depth: int, epoch: int) -> None:
        """One delivered batch: stats, trace, and a check at check points."""
        self._stats.record(wait, result.produce_s, result.cpu_s, depth, result.nbytes)
        for ring, _ in self.traces:
            ring.batch(epoch, result.pos, result.source_index, result.worker, wait,
                       result.produce_s, depth, result.nbytes)  # fmt: skip
        self._n += 1
        if self._n >= self._next:
            self._check(result.nbytes)

    def _check(self, nbytes: int) -> None:
        self._next = self._n + self._stride if self._auto else self._n * 2
        self._fit_memory(nbytes)
        if self._auto:
            self._tune()
        elif not self._warned:
            self._warn()

    # -- memory --------------------------------------------------------------------
    def _fit_memory(self, nbytes: int) -> None:
        if nbytes <= 0:  # no array data: nothing for the budget to weigh
            if not self._sized and self._resize is not None:
                self._sized = True
                self._resize(self.workers, self._budget)
            return
        if nbytes > self.max_memory:
            raise ConfigError(
                f"one batch is {nbytes / 1e6:.1f} MB, more than max_memory="
                f"{self.max_memory / 1e6:.1f} MB on its own: raise max_memory "
                "(bytes, or a fraction of the available memory such as 0.5) or make "
                "batches smaller"
            )
        slots = tune.memory_slots(self.max_memory, nbytes)
        if not self._sized and self._budget <= slots and self._resize is not None:
            self._sized = True
            self._resize(self.workers, self._budget)  # the queue, now that it fits
        if self._budget > slots and self._resize is not None:
            self._sized = True
            why = (
                f"{self._budget} batches of {nbytes / 1e6:.1f} MB would pass "
                f"max_memory={self.max_memory / 1e6:.0f} MB"
            )
            self._apply(min(self.workers, slots), max(0, slots - self.workers), why)

    # -- autotuning ----------------------------------------------------------------
    def _tune(self) -> None:
        now = self._clock()
        figures = self._stats.snapshot()
        if self._switching:
            if self._feed.mode != self._controller.mode:
                return  # the old workers still have batches out
            self._switching = False
            self._stats.mode = self._feed.mode
            self._window = None  # measure the new workers afresh
        if self._window is None:
            self._window = (now, figures)
            self._cpu = tune.cpu_times()
            self._window_epochs = self._stats.epochs
            return
        start, before = self._window
        span = now - start
        batches = figures[0] - before[0]
        if span < WINDOW_S or (batches < WINDOW_BATCHES and span < MAX_WINDOW_S):
            return
        d = [b - a for a, b in zip(before, figures, strict=True)]
        # Elapsed from the stats, not the wall clock: time between epochs (a
        # validation pass, a checkpoint) is not the training step's.
        elapsed = d[5] if d[5] > 0 else span
        cpu = tune.cpu_times()
        idle = (cpu[0] - self._cpu[0]) / max(cpu[1] - self._cpu[1], 1e-9)
        epochs = self._stats.epochs
        window = tune.Window(elapsed, int(d[0]), d[1], d[2], d[3], int(d[4]),
                             self.workers, min(idle * _CPUS, self.cores),
                             epochs != self._window_epochs)  # fmt: skip
        self._window, self._cpu, self._window_epochs = (now, figures), cpu, epochs
        # About 16 checks per window: a cheap source (thousands of batches a
        # second) then pays a clock read every few dozen batches, not every one.
        self._stride = max(1, min(_MAX_STRIDE, window.batches // 16))
        auto = self._opts.auto
        if "workers" in auto or "use_multiprocessing" in auto:
            # An auto queue makes room for workers down to MIN_QUEUE places when
            # memory binds: the latency workload with max_memory of 8 batches was
            # held at 2 workers behind a queue of 6, 12 s an epoch instead of 1.
            queue_auto = "max_queue_size" in auto
            self._controller.queue = (
                min(self.queue, tune.MIN_QUEUE) if queue_auto else self.queue
            )
            decision = self._controller.observe(window)
            if decision is not None and decision.setting == "mode":
                self._switch(decision)
            elif decision is not None and "workers" in auto:
                new, queue = int(decision.new), self.queue
                if "max_queue_size" in auto:
                    # Under a budget that binds, a producer is worth more than a
                    # place in the queue (controller.queue: MIN_QUEUE, above).
                    slots = tune.memory_slots(self.max_memory, window.batch_bytes)
                    queue = max(1, min(queue, slots - new))
                self._apply(new, queue, decision.why)
            else:
                self._controller.workers = self.workers  # the user fixed the count
        if "max_queue_size" in self._opts.auto:
            mean, p95 = self._stats.produce_spread()
            # Never under Keras' 10: a short queue saves only memory (which the
            # budget guards) and costs cheap batches their run-ahead (measured:
            # the tiny workload lost a third of its throughput at 2).
            queue = max(
                DEFAULT_MAX_QUEUE_SIZE,
                tune.queue_for(mean, p95, window.step_s, self.workers),
            )
            # Grow at once (jitter starves the loop); never shrink but for memory.
            # The step a window measures moves with the machine's load (2 to 40
            # ms for a 2 ms sleep on a busy machine, measured on the files
            # workload), so a queue sized down from it breathed with every window;
            # a longer queue costs only memory, which the budget below guards.
            queue = max(queue, self.queue)
            slots = tune.memory_slots(self.max_memory, window.batch_bytes)
            queue = min(queue, slots - self.workers)
            # Growth by a quarter at least: +2 every window only fills the log.
            grown = queue >= max(self.queue + 2, self.queue * 5 // 4)
            if grown or queue < self.queue:
                why = (
                    f"produce time mean {mean * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
                    f"against a {window.step_s * 1e3:.2f} ms step"
                )
                self._apply(self.workers, max(1, queue), why)

    def _apply(self, workers: int, queue: int, why: str) -> None:
        at = self._stats.batches
        for setting, old, new in (
            ("workers", self.workers, workers),
            ("max_queue_size", self.queue, queue),
        ):
            if old != new:
                self._stats.decided(at, setting, old, new, why)
                for ring, _ in self.traces:
                    ring.decision(setting, old, new, why)
        self.workers, self.queue = workers, queue
        self._controller.workers = workers
        self._budget = max(1, workers + queue)
        self._stats.workers, self._stats.max_queue_size = workers, queue
        if self._resize is not None:
            self._resize(workers, self._budget)

    def _switch(self, decision: tune.Decision) -> None:
        """Change threads <-> processes: the batches not yet started move at once
        (``handoff.py``); to processes only if the source can cross."""
        ctl = self._controller
        refusal = self._feed.can_cross() if decision.new == "process" else None
        if refusal is not None:
            ctl.stay_on_threads(self.workers)
            _log.warning(
                "stoker: %s: %s; but the source cannot go to processes (%s), so it "
                "stays on threads",
                self._name,
                decision.why,
                refusal,
            )
            return
        at = self._stats.batches
        budget = self.queue + ctl.workers
        when = self._feed.switch_mode(decision.new, ctl.workers, budget)
        if when == "refused":  # the feed said why
            ctl.stay_on_threads(self.workers)
            return
        why = f"{decision.why}; " + (
            f"from batch {at} on" if when == "now" else "from the next epoch"
        )
        self._stats.decided(at, "mode", decision.old, decision.new, why)
        for ring, _ in self.traces:
            ring.decision("mode", decision.old, decision.new, why)
        _log.warning("stoker: %s: moving to %s workers: %s", self._name,
                     decision.new, why)  # fmt: skip
        if ctl.workers != self.workers:
            self._stats.decided(at, "workers", self.workers, ctl.workers, why)
        self.workers = ctl.workers
        self._budget = budget
        self._stats.workers = self.workers
        self._switching = True

    # -- advice --------------------------------------------------------------------
    def _warn(self) -> None:
        s = self._stats
        elapsed = s.snapshot()[5]
        if elapsed < WARN_AFTER_S:
            return
        summary = s.summary()
        if summary["wait_fraction"] <= WARN_WAIT_FRACTION:
            return
        self._warned = True
        _log.warning("stoker: %s: %s", self._name, summary["advice"])

    # -- tracing ---------------------------------------------------------------------
    def start_trace(self, path: str | os.PathLike[str], batches: int) -> TraceRing:
        """Keep the last ``batches`` batches, to write to ``path`` at ``close()``."""
        ring = TraceRing(batches, self._name)
        self.traces.append((ring, path))
        return ring

    def stop_trace(self, ring: TraceRing) -> None:
        """Write ``ring`` to its path and stop recording into it."""
        for i, (r, path) in enumerate(self.traces):
            if r is ring:
                del self.traces[i]
                r.write(path)
                return

    def close(self) -> None:
        """Write every trace still open."""
        for ring, _ in list(self.traces):
            self.stop_trace(ring)

    def summary(self) -> dict[str, Any]:
        """The settings the governor holds now (for diagnostics)."""
        return {"workers": self.workers, "max_queue_size": self.queue}


class TraceWindow:
    """What ``loader.trace(path)`` returns: ``stop()`` writes the file (once)."""

    def __init__(self, governor: Governor, ring: TraceRing) -> None:
        self._governor = governor
        self._ring = ring

    def stop(self) -> None:
        """Write the trace and stop recording; idempotent."""
        self._governor.stop_trace(self._ring)

    def __enter__(self) -> TraceWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
