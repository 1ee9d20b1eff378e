"""The autotuner's controller: a pure function of measurements, no clock of its own.

The rule, in the seed article's terms (queue, workers, threads or processes, memory):

- **Workers grow** while the training loop waits for data (wait fraction above
  ``WAIT_TARGET``) and the last increase still paid: one window with more workers
  must deliver at least ``MIN_GAIN`` more batches per second. The step is the
  estimate ``produce time / step time`` (the workers that would keep up), at most
  ``GROW_FACTOR`` times the count per window; once the count matches the estimate
  and the loop still waits, a quarter more (the spread of produce times leaves gaps
  the mean does not show), kept only if it pays. A quarter at a time as well when
  the last increase made each batch much slower while the workers burned CPU (they
  contend: the estimate from the slower batches would overshoot), and past a
  ceiling that was found at this batch cost. The window right after an increase
  is skipped: it holds the new workers' start-up.
- **Workers stop** when the wait fraction is under ``WAIT_TARGET``, or when the last
  increase added less than ``MIN_GAIN``: that increase is undone and the count is
  remembered as a ceiling (the source is bound by something workers do not add:
  the GIL, a disk, a remote server's limit). The ceiling is tried again after 4,
  8, 16, ... windows, and at once when the batch cost changes threefold, so a window
  spoilt by a source that changed speed in its middle does not stop the growth for
  good.
- **Workers shrink** when they sit idle: for ``IDLE_WINDOWS`` windows in a row the
  workers spent under ``1 / SHRINK_SLACK`` of their time producing and the loop did
  not wait, or it waited for the hand-off (the pool's whole work fits in half a
  worker: more workers would not shorten that wait, so it does not grow either);
  never below a count that was grown from because the loop waited at
  this batch cost (measured on the big workload: 3 -> 1 by the busy share, then
  waits and growth again, every second).
- **Workers come back to the cores** when threads past the core count together
  burn a core or more (``_cut``): they only queue for the CPU or the GIL. The cut
  is kept unless the next window loses ``MIN_GAIN`` (``_judge_cut``).
- **Threads or processes:** threads may go far past the core count (an I/O-bound
  source overlaps waits: the seed's latency case wants 8 to 64); processes stay
  within the usable cores (affinity and the cgroup's ``cpu.max``). A switch from
  threads to processes is proposed only when the work holds the GIL (the threads
  together burn between ``GIL_SHARE`` and ``GIL_FREE_LOAD`` CPU-seconds per second
  while at least ``GIL_IDLE_CORES`` of the machine sat idle) and the source can
  cross, whether or not the loop waits (GIL-bound threads slow the loop's own
  Python too); and undone at the next window if processes did not pay. The move
  itself happens mid-epoch (``handoff.py``).
- **Memory:** batches in flight (``queue + workers``) times the measured batch size
  never exceed the memory budget; the worker ceiling follows from it.

Why a controller of measurements only: every decision is reproducible from the
numbers it was given, so the tests script the numbers (no sleeps, no threads) and the
engine (``govern.py``) only measures and applies.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

# Under 2% of the time waiting, input is not what limits training (issue 14's target).
WAIT_TARGET = 0.02
# One more step of workers must add at least 5% throughput to be kept.
MIN_GAIN = 0.05
# Most a window may multiply the workers by: the estimate is usually right (a sleep
# or a read overlaps perfectly), and one window at a wrong count is undone by the
# next (the MIN_GAIN test), so a bold step converges in a window or two.
GROW_FACTOR = 16
# Shrink when the workers' busy share is under 1 / SHRINK_SLACK of what they could do.
SHRINK_SLACK = 2.0
# Idle windows in a row before workers are retired: growing back costs a window of
# waiting, so one quiet window (a fast stretch of the data) is not enough.
IDLE_WINDOWS = 3
# Threads for an I/O-bound source: the seed's latency case wants up to 64.
MAX_THREADS = 64
# Thread workers that together burn this many CPU-seconds per second hold the GIL
# (stats.py's verdict uses the same figure): threads cannot scale them, processes can.
# As a share of produce time, it marks work on the CPU (threads capped at the cores).
GIL_SHARE = 0.6
# Thread workers burning more CPU-seconds per second than this release the GIL.
GIL_FREE_LOAD = 1.3
# ...and are held back by the GIL, not the machine, only if at least this many
# cores sat idle meanwhile.
GIL_IDLE_CORES = 0.5
# Workers that together burn this share of the usable cores saturate the machine:
# more of them only queue for the cores, whatever share of a batch's wall time is
# CPU (with threads past the cores, each batch's wall time grows and its CPU share
# falls: the files workload's decode read 0.87 on 2 threads, 0.15 on 10).
SATURATED = 0.75
# Where "auto" starts: one worker is the pessimist's start, two show a gain at once.
START_WORKERS = 2
# Bounds of max_queue_size="auto": Keras' default 10 sits inside.
MIN_QUEUE, MAX_QUEUE = 2, 32
# Batches cheaper than this (mean produce time) cost mostly their hand-off.
CHEAP_BATCH_S = 0.0005


class Window(NamedTuple):
    """What the loop measured over a span of batches (all sums over the span).

    Attributes:
        elapsed_s: wall seconds of the span.
        batches: batches delivered in it.
        wait_s: seconds the consumer waited for them.
        produce_s: worker seconds spent producing them.
        cpu_s: worker CPU seconds spent producing them.
        nbytes: bytes of array data delivered.
        workers: workers in force during the span.
        idle_cores: cores of the machine that sat idle on average (``cpu_times``).
        epoch_start: an epoch began in the span. Its first batches find the queue
            empty whatever the count (the pipeline refills), so such a window
            neither judges an increase nor asks for one past the estimate.
    """

    elapsed_s: float
    batches: int
    wait_s: float
    produce_s: float
    cpu_s: float
    nbytes: int
    workers: int
    idle_cores: float = math.nan  # cores the machine left idle (NaN: unknown)
    epoch_start: bool = False  # an epoch began inside the span

    @property
    def wait_fraction(self) -> float:
        return self.wait_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def throughput(self) -> float:
        return self.batches / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def step_s(self) -> float:
        """The consumer's own time per batch (the training step)."""
        return max(self.elapsed_s - self.wait_s, 1e-9) / max(self.batches, 1)

    @property
    def batch_bytes(self) -> float:
        return self.nbytes / max(self.batches, 1)


class Decision(NamedTuple):
    """One change: ``setting`` goes from ``old`` to ``new`` because ``why``."""

    setting: str  # "workers", "max_queue_size" or "mode"
    old: int | str
    new: int | str
    why: str


def usable_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may use: its affinity, within the cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open(cpu_max, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit: the affinity is the limit
    return max(1, cores)


def cpu_times(stat: str = "/proc/stat") -> tuple[float, float]:
    """The machine's ``(idle, total)`` CPU seconds since boot, summed over cores.

    Two readings a window apart give the idle cores in between: ``d_idle / d_total
    * cores``. ``(nan, nan)`` where ``/proc/stat`` is missing.
    """
    try:
        with open(stat, encoding="ascii") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def available_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes the system could give now (``MemAvailable``), or None where unknown."""
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_slots(max_memory: int, batch_bytes: float) -> int:
    """How many batches of ``batch_bytes`` fit in ``max_memory`` (at least 0)."""
    if batch_bytes <= 0:
        return 1 << 30
    return int(max_memory // batch_bytes)


def queue_for_jitter(mean_s: float, p95_s: float, step_s: float, workers: int) -> int:
    """``max_queue_size="auto"``: finished batches that cover a slow batch.

    While one batch takes its p95 time instead of its mean, the other workers keep
    producing; the queue must hold what the consumer eats meanwhile, ``(p95 - mean) /
    step`` batches, plus two so that a hand-off never finds it empty.
    """
    spread = max(p95_s - mean_s, 0.0)
    need = math.ceil(spread / max(step_s, 1e-6)) + 2
    return max(MIN_QUEUE, min(MAX_QUEUE, need, max(MIN_QUEUE, 4 * workers)))


def queue_for(mean_s: float, p95_s: float, step_s: float, workers: int) -> int:
    """``max_queue_size="auto"`` before the memory budget: :func:`queue_for_jitter`,
    and ``MAX_QUEUE`` for cheap batches (mean under ``CHEAP_BATCH_S``).

    Why cheap batches get the longest queue: their cost is the hand-off, and a
    worker that finds no free place in the queue sleeps and is woken per batch;
    with room to run ahead it rarely sleeps. Measured on the tiny workload (2
    threads): 5.4 us per batch with a queue of 10, 4.3-4.9 us with 32. The memory
    budget still bounds it (``Governor``).
    """
    if 0 < mean_s < CHEAP_BATCH_S:
        return MAX_QUEUE
    return queue_for_jitter(mean_s, p95_s, step_s, workers)


class Controller:
    """Proposes worker counts from windows of measurements (module docstring).

    Args:
        mode: ``"thread"`` or ``"process"``.
        workers: the count in force now.
        cores: usable cores (``usable_cores()``).
        max_memory: the memory budget in bytes.
        queue: ``max_queue_size`` in force (batches waiting besides the workers').
        can_switch: the user allowed a move to processes (``use_multiprocessing=
            "auto"``) and the source pickles.
    """

    def __init__(
        self,
        mode: str,
        workers: int,
        *,
        cores: int,
        max_memory: int,
        queue: int,
        can_switch: bool = False,
    ) -> None:
        self.mode = mode
        self.workers = workers
        self.cores = cores
        self.max_memory = max_memory
        self.queue = queue
        self.can_switch = can_switch
        self.ceiling = self._hard_cap()
        self._before: tuple[int, float, float] | None = None  # pre-grow figures
        self._ceiling_produce_s = 0.0  # the batch cost when the ceiling was found
        self._settling = False  # the next window follows an increase: skip it
        self._idle = 0  # idle windows in a row
        self._hold = 0  # windows left before the ceiling is tried again
        self._holds = 0  # ceilings found so far: each waits twice as long
        # A ceiling was found at this batch cost: past it, grow a quarter at a time.
        self._bounded = False
        # Fewest workers that did not leave the loop waiting at this batch cost: a
        # shrink stops there (idle by the busy share, yet one fewer made it wait).
        self._floor = 1
        # After a move to processes: the threads' (workers, throughput), to judge it.
        self._on_threads: tuple[int, float] | None = None
        # After a cut to fewer workers on saturated cores: (workers, throughput).
        self._above: tuple[int, float] | None = None

    def _hard_cap(self) -> int:
        return MAX_THREADS if self.mode == "thread" else self.cores

    def memory_cap(self, batch_bytes: float) -> int:
        """Most workers the budget allows with ``queue`` batches waiting as well."""
        return memory_slots(self.max_memory, batch_bytes) - self.queue

    def observe(self, w: Window) -> Decision | None:
        """The change this window calls for, or None; the controller applies it."""
        if w.batches == 0 or w.elapsed_s <= 0:
            return None
        produce = w.produce_s / w.batches
        if self.ceiling < self._hard_cap() and not (
            1 / 3 < produce / max(self._ceiling_produce_s, 1e-12) < 3.0
        ):
            # The source changed speed (a new phase, another file system): the
            # ceiling found for the old cost says nothing about the new one.
            self.ceiling = self._hard_cap()
            self._bounded = False
            self._floor = 1
            self._above = None
        elif self.ceiling < self._hard_cap():
            self._hold -= 1
            if self._hold <= 0:  # try again now and then: the source may change
                self.ceiling = self._hard_cap()
        by_memory = self.memory_cap(w.batch_bytes)
        cap = min(self.ceiling, by_memory)
        if self.workers > max(by_memory, 1):
            return self._set(
                max(by_memory, 1),
                f"{self.workers} workers and a queue of {self.queue} batches of "
                f"{w.batch_bytes / 1e6:.1f} MB would pass the memory budget "
                f"({self.max_memory / 1e6:.0f} MB)",
            )
        load = w.cpu_s / w.elapsed_s  # CPU-seconds per second of all the workers
        if w.cpu_s >= GIL_SHARE * w.produce_s or load >= SATURATED * self.cores:
            # Work on the CPU: more workers than cores only queue for them.
            cap = min(cap, self.cores)
        switch = self._switch(w)
        if switch is not None:
            return switch
        if self._settling:
            # The window right after an increase holds the new workers' start (a
            # process's fork, every new worker's first batch): judged on it, an
            # increase that pays would look as if it did not.
            self._settling = False
            return None
        if self._on_threads is not None:
            return self._judge_switch(w)
        if self._above is not None:
            return self._judge_cut(w)
        before, self._before = self._before, None
        waits = w.wait_fraction > WAIT_TARGET
        if before is not None and waits and w.epoch_start:
            self._before = before  # judged on the next window (Window.epoch_start)
            return None
        contended = False
        if before is not None and waits:
            gain = w.throughput / max(before[1], 1e-12) - 1.0
            # Batches that got much slower while the workers together burned under
            # half a core mean the source changed speed (workers that contend for
            # the GIL or the cores also get slower, but burn a core or more): that
            # window says nothing about the increase, so keep growing.
            slower = produce > 1.5 * before[2] and w.cpu_s < 0.5 * w.elapsed_s
            contended = produce > 1.5 * before[2] and not slower
            if gain < MIN_GAIN and not slower:
                self._bounded = True
                self.ceiling = before[0]
                self._floor = min(self._floor, before[0])
                self._ceiling_produce_s = before[2]
                self._holds += 1
                self._hold = 2 ** min(self._holds + 1, 10)
                return self._set(
                    before[0],
                    f"{before[0]} -> {self.workers} workers added {gain:.0%} "
                    f"throughput (under {MIN_GAIN:.0%}): kept {before[0]}",
                )
        if (
            load >= min(1.0, SATURATED * self.cores)
            and self.workers > max(self.cores, self._floor)
            and not w.epoch_start
        ):
            return self._cut(w)
        need = math.ceil(produce / w.step_s * 1.1)
        # The whole pool's work fits in half of one worker, yet the loop waits: it
        # waits for the hand-off, which more workers do not shorten (tiny: 1 -> 2
        # workers added 1%).
        handoff = w.produce_s * SHRINK_SLACK < w.elapsed_s
        if (
            waits
            and not handoff
            and self.workers < cap
            and (need > self.workers or not w.epoch_start)
        ):
            if need > self.workers and not contended and not self._bounded:
                new = max(self.workers + 1, min(need, GROW_FACTOR * self.workers, cap))
                why = (
                    f"{produce * 1e3:.1f} ms per batch against a "
                    f"{w.step_s * 1e3:.2f} ms step needs about {need} workers"
                )
            else:
                # A quarter more, judged by the next window's MIN_GAIN test. Why not
                # the estimate: the last increase made each batch slower while the
                # workers burned CPU (they contend for the cores or the GIL: the
                # files workload went 2 -> 7 -> 22 threads as each batch went 16 ->
                # 64 -> 136 ms); or more did not pay before at this batch cost; or
                # the count already matches the mean and the loop still waits (the
                # spread of produce times leaves gaps the mean does not show: 26
                # threads for a 28-worker estimate delivered 0.65 of 64 on the
                # latency workload).
                new = min(cap, max(self.workers + 1, math.ceil(self.workers * 1.25)))
                if contended and before is not None:
                    why = (
                        f"batches took {produce / before[2]:.1f}x longer after the "
                        "last increase (the workers contend for CPU): trying a "
                        "quarter more"
                    )
                elif self._bounded:
                    why = (
                        f"more than {self.workers} did not pay before: trying a "
                        "quarter more"
                    )
                else:
                    why = (
                        f"{self.workers} workers match the mean produce time but the "
                        "waits remain: trying more"
                    )
            self._before = (self.workers, w.throughput, produce)
            self._floor = max(self._floor, min(self.workers + 1, new))
            self._settling = True
            return self._set(
                new, f"the loop waited {w.wait_fraction:.0%} of the time; {why}"
            )
        busy = w.produce_s / (w.elapsed_s * self.workers)
        # Idle: the loop did not wait, or it waited while the whole pool's work
        # would fit in half of one worker: then what it waits for is the hand-off
        # (a wake-up, a queue), which fewer workers contending for the GIL make
        # shorter. Measured on the tiny workload: the loop waited 75% with 2
        # workers busy 16%; 1 worker ran 1.8% faster per batch than 2.
        idle = (
            self.workers > 1
            and busy * SHRINK_SLACK < 1.0
            and (not waits or busy * self.workers * SHRINK_SLACK < 1.0)
        )
        if not w.epoch_start:  # a refill neither counts nor breaks the run
            self._idle = self._idle + 1 if idle else 0
        if self._idle >= IDLE_WINDOWS:
            self._idle = 0
            new = max(self._floor, math.ceil(self.workers * busy * 1.5))
            if new < self.workers:
                return self._set(
                    new,
                    f"workers were busy {busy:.0%} of the time "
                    + (
                        "with no wait"
                        if not waits
                        else "while the loop waited "
                        f"{w.wait_fraction:.0%} for the hand-off, not for them"
                    ),
                )
        return None

    def _cut(self, w: Window) -> Decision | None:
        """Workers past the cores while together they burn a core or more (the
        GIL's one, or the machine's): try as many as the cores (or the floor),
        judged by the next window (``_judge_cut``).

        How it happens: a cold start (first reads from disk, a machine busy for a
        moment) makes each batch look like waiting, the count grows for it, and
        once the data is warm the extra threads contend: the files workload grew to
        10 threads and delivered 0.66 of 2, where no rule brought it back (the
        loop still waited, so none looked idle)."""
        self._above = (self.workers, w.throughput)
        new = max(self.cores, self._floor)
        return self._set(
            new,
            f"{self.workers} workers kept {w.cpu_s / w.elapsed_s:.2f} CPU busy on "
            f"{self.cores} cores: past the cores they only queue for the CPU (or the "
            f"GIL); trying {new}",
        )

    def _judge_cut(self, w: Window) -> Decision | None:
        """Keep the cut unless it cost throughput (then back, and no lower again at
        this batch cost: the source also waits on something else, a disk or a
        server, that more workers overlap)."""
        assert self._above is not None
        workers, before = self._above
        self._above = None
        if w.epoch_start:  # the refill after an epoch start judges nothing
            self._above = (workers, before)
            return None
        loss = 1.0 - w.throughput / max(before, 1e-12)
        if loss < MIN_GAIN:
            return None
        self._floor = workers
        return self._set(
            workers,
            f"{self.workers} workers delivered {w.throughput:.1f} batches/s against "
            f"{before:.1f} on {workers} ({-loss:+.0%}): back to {workers}",
        )

    def _switch(self, w: Window) -> Decision | None:
        if self.mode != "thread" or not self.can_switch:
            return None
        # CPU-seconds per second of all the threads together: the GIL lets about
        # one run Python at a time, so near 1.0 they take turns on it; well past
        # it, they run C code with the GIL released and use the cores already.
        load = w.cpu_s / w.elapsed_s
        # Whether the loop waits does not matter: threads that keep the GIL this
        # busy also slow the training loop's own Python (it queues for the GIL
        # after every step), which the wait fraction does not show. Measured on the
        # cpu workload behind a 2 ms step: 2 threads, the loop waited under 2% and
        # ran 228 batches/s; 2 processes ran 411.
        if not GIL_SHARE <= load < GIL_FREE_LOAD:
            return None
        if w.idle_cores < GIL_IDLE_CORES:
            # The machine had no core to spare: threads that share one core look
            # GIL-bound on a busy machine too, and processes would not help.
            return None
        self.mode = "process"
        self.can_switch = False
        self.ceiling = self._hard_cap()
        self._before = None
        self._settling = True  # the first window on processes holds their start
        self._on_threads = (self.workers, w.throughput)
        old = self.workers
        self.workers = max(1, min(self.cores, self.memory_cap(w.batch_bytes)))
        return Decision(
            "mode",
            "thread",
            "process",
            f"the thread workers kept {load:.2f} CPU busy, one at a time on the GIL, "
            f"and the loop waited {w.wait_fraction:.0%}: processes, {self.workers} "
            f"(was {old} threads)",
        )

    def _judge_switch(self, w: Window) -> Decision | None:
        """Keep processes only if they pay as an increase must (``MIN_GAIN``), or,
        when the loop no longer waits for data, if they cost it no throughput.

        Why the second case still asks for no loss: threads are moved whether or
        not the loop waits (``_switch``), and a source that burns CPU in C code
        with the GIL released looks GIL-bound by its load alone (the big workload's
        9.6 MB fills: 0.64 CPU on one thread); processes that then slow the loop
        down are undone."""
        assert self._on_threads is not None
        workers, before = self._on_threads
        self._on_threads = None
        gain = w.throughput / max(before, 1e-12) - 1.0
        if gain >= MIN_GAIN or (w.wait_fraction <= WAIT_TARGET and gain > -MIN_GAIN):
            return None
        procs = self.workers
        self.stay_on_threads(workers)
        return Decision(
            "mode",
            "process",
            "thread",
            f"{procs} processes delivered {w.throughput:.1f} batches/s against "
            f"{before:.1f} on {workers} threads ({gain:+.0%}): back to threads",
        )

    def stay_on_threads(self, workers: int) -> None:
        """Undo a proposed switch to processes (the source cannot cross)."""
        self.mode, self.workers, self.can_switch = "thread", workers, False
        self.ceiling = self._hard_cap()

    def _set(self, new: int, why: str) -> Decision | None:
        if new == self.workers:
            return None
        old, self.workers = self.workers, new
        return Decision("workers", old, new, why)
