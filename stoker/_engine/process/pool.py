"""A loader's worker processes: started in the background, kept, watched, stopped.

The pool owns the processes, the three kinds of socket (``wire.py``), the shared
memory arena, its slot ring (``shm.py``) and the table of tasks in flight. It runs
only on the consumer's thread. Epoch runs (``backend.py``) hand it tasks with
``dispatch`` and take their results with ``receive``; results of runs that were
stopped are settled here (their slots go back to the ring), so a run never sees
another run's messages and nothing calls back into a run.

Starting: only worker 0 starts with the pool. The others start one at a time while
the consumer would otherwise wait (``start_pending``, called by a run's ``get``),
each taking tasks from the shared socket as soon as it is up. So the first batch
costs one worker's start plus one batch, whatever the worker count; forking happens
on the consumer's thread, at a point where it runs no training step. The next
worker starts once one wait of the consumer, or its waits since the last start
added up (``waited_s``), is as long as that start took (``start_s``): forking a
parent that holds torch takes 5-7 ms, and a batch that arrives during a fork waits
for it. So a quick first batch is not held up by workers it did not need (issue
15's time to first batch), and a consumer that waits even a little per batch still
gets every worker in the end. Once a wait is that long, the rest start one after
another while nothing arrives (a start with nothing to hand over after it was
time the consumer would have waited anyway), so a slow source gets its workers as
fast as they can fork (startup.py: the first epoch at 16 workers).

Watching: ``receive`` waits with one ``epoll`` over the results socket *and every
started worker's process sentinel*, so a worker that dies is noticed in the same wait
that would have received its batch: never a hang.

Stopping (``shutdown``): the consumer closes its ends of the task and control
sockets; each worker's watchdog sees the hang-up and exits at once, even inside
``source[i]``. Workers still alive after ``_GRACE_S`` get SIGTERM, then SIGKILL.
With ``fork``, each child first closes its inherited copies of the consumer's ends,
so that only the consumer holds them and its death (even by SIGKILL) hangs them up.
"""

from __future__ import annotations

import logging
import math
import os
import select
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stoker._engine import pickling, tracebacks
from stoker._engine.crash import worker_crashed
from stoker._engine.fetch import Fetcher
from stoker._engine.plan import Key
from stoker._engine.process import codec, start, wire, worker
from stoker._engine.process.messages import (
    Done,
    Failed,
    Fatal,
    Skipped,
    SourceUpdate,
    Task,
)
from stoker._engine.process.shm import WAIT, Segment, Slot, SlotRing, reservation_bytes
from stoker._engine.run import Result, add_note
from stoker._errors import LoaderClosed, SerializationError, StokerError, WorkerError
from stoker._options import LoaderOptions

_log = logging.getLogger("stoker")
# After the sockets close, how long workers get to exit before SIGTERM, then SIGKILL.
_GRACE_S = 0.4
# Reaping a process whose sentinel fired: it is exiting, this is only a bound.
_REAP_S = 1.0
# Sending a source update to a worker busy in a long batch: its socket buffer holds
# many updates, so this only bounds a worker that stopped reading altogether.
_CONTROL_SEND_TIMEOUT_S = 30.0


class _InFlight(NamedTuple):
    key: Key
    epoch: int
    slot: Slot


# The consumer-side fds of every live pool in this process. A forked worker closes
# them all, so that only the consumer holds them (module docstring).
_consumer_fds: set[int] = set()


class WorkerPool:
    """Worker processes with their sockets and shared memory (module docstring)."""

    def __init__(
        self,
        fetcher: Fetcher,
        opts: LoaderOptions,
        budget: int,
        name: str,
        *,
        method: str,
        seed: int,
        generation: int,
        limit: int | None = None,
    ) -> None:
        self.method = method
        self.workers = opts.workers  # to run now; room for ``limit`` (auto grows)
        limit = max(limit or 0, opts.workers)
        self.failure: StokerError | None = None
        self.closed = False
        self.sync = 0  # source updates sent so far
        self.produce_ema_s = 1.0  # recent seconds per batch (slow until measured)
        self.start_s = 0.0  # how long the last worker took to start (module docstring)
        self.waited_s = 0.0  # the consumer's waits since then
        self.procs: list[Any] = []
        self._inflight: dict[tuple[int, int], _InFlight] = {}
        self._ready: list[tuple[int, Result]] = []  # (run, result) read, not taken
        self._cancelled_below = 0
        blob = None
        if method != "fork":
            blob = pickling.dumps_source(fetcher, fetcher.source, method)
        self.arena = Segment.create(reservation_bytes(), f"stoker-{os.getpid()}")
        self.header = np.ndarray(
            (worker.header_words(limit),), np.int64, buffer=self.arena.u8
        )
        for w in range(limit):
            pos_word, _, state_word = worker.status_words(w)
            self.header[pos_word] = -1  # idle
            self.header[state_word] = worker.STARTING
        self.ring = SlotRing(
            self.arena,
            worker.header_bytes(limit),
            budget + 1,
            opts.max_queue_bytes,
        )
        self._tasks, tasks_w = wire.pair()
        self._results, results_w = wire.pair()
        controls = [wire.pair() for _ in range(limit)]
        self._controls = [c for c, _ in controls]
        self._epoll = select.epoll()
        self._mine = [
            self._tasks.fileno(),
            self._results.fileno(),
            self._epoll.fileno(),
        ]
        self._mine += [c.fileno() for c in self._controls]
        self._mine.append(self.arena.fd or -1)
        self._their_ends = [tasks_w, results_w, *(c for _, c in controls)]
        _consumer_fds.update(self._mine)
        reseed = (
            opts.seed is not None
            if opts.reseed_globals is None
            else opts.reseed_globals
        )
        self._boots = [
            worker.Boot(
                index=w,
                fetcher=fetcher if method == "fork" else None,
                blob=blob,
                reseed=reseed,
                seed=seed,
                generation=generation,
                arena=worker.FdHandle(self.arena.fd or -1),
                arena_size=self.arena.size,
                workers=limit,
                tasks=tasks_w,
                results=results_w,
                control=controls[w][1],
                close_fds=[],
            )
            for w in range(limit)
        ]
        self._names = [f"{name}-worker-{w}" for w in range(limit)]
        self._tasks.setblocking(False)
        self._results.setblocking(False)
        self._receiver = wire.Receiver(self._results)
        for c in self._controls:
            c.settimeout(_CONTROL_SEND_TIMEOUT_S)
        self._epoll.register(self._results.fileno(), select.EPOLLIN)
        self._owner: dict[int, int] = {}  # sentinel fd -> worker index
        try:
            self.start_pending()
        except BaseException:
            self.shutdown(_GRACE_S)
            raise

    # -- starting ------------------------------------------------------------------
    def start_pending(self) -> bool:
        """Start the next worker, if any is left; True if one was started."""
        w = len(self.procs)
        if not self.pending:
            return False
        boot = self._boots[w]
        if self.method == "fork":
            boot.close_fds = sorted(_consumer_fds - {boot.arena.fd})
        began = time.perf_counter()
        proc = start.start_process(self.method, worker.main, boot, self._names[w])
        self.start_s = time.perf_counter() - began
        self.waited_s = 0.0
        self.procs.append(proc)
        self._owner[proc.sentinel] = w
        self._epoll.register(proc.sentinel, select.EPOLLIN)
        if len(self.procs) == len(self._boots):
            for sock in self._their_ends:  # every child has its copy now
                sock.close()
        return True

    @property
    def pending(self) -> bool:
        """Whether a worker that should run now has not been started yet."""
        return len(self.procs) < min(self.workers, len(self._boots)) and not self.closed

    @property
    def pids(self) -> list[int]:
        """Process ids of the started workers (for tests and diagnostics)."""
        return [p.pid for p in self.procs]

    # -- tasks -----------------------------------------------------------------------
    def dispatch(
        self, run: int, epoch: int, tasks: Sequence[tuple[int, Key]], busy: bool
    ) -> int:
        """Send ``tasks`` of ``run`` as one message; how many were sent.

        Each task takes a slot of the ring first; fewer are sent when the ring says
        wait (``busy``: the run has batches out, so one comes back) or the socket
        is full. The tasks not sent are the caller's to try again.
        """
        ring = self.ring
        messages: list[Task] = []
        for pos, key in tasks:
            slot = ring.lend(busy or bool(messages))
            if slot is WAIT:
                break
            assert slot is not None
            self._inflight[(run, pos)] = _InFlight(key, epoch, slot)
            messages.append(
                Task(run, epoch, pos, key, slot.offset, slot.size, self.sync)
            )
        if not messages:
            return 0
        try:
            wire.send(self._tasks, messages)
        except BlockingIOError:
            sent = False
        except OSError as exc:
            self._fail(WorkerError(f"the worker processes are gone ({exc})"))
            sent = False
        else:
            sent = True
        if not sent:
            for task in messages:
                ring.discard(self._inflight.pop((run, task.pos)).slot)
            return 0
        return len(messages)

    def in_flight(self, run: int) -> int:
        """Tasks of ``run`` sent and not yet answered."""
        return sum(1 for r, _ in self._inflight if r == run)

    def cancel_below(self, run: int) -> None:
        """Workers skip, and ``receive`` drops, every task of a run before ``run``."""
        self._cancelled_below = max(run, self._cancelled_below)
        self.header[worker.CANCEL_WORD] = self._cancelled_below
        self._ready = [(r, x) for r, x in self._ready if r >= run]

    def send_update(self, payload: bytes) -> None:
        """Send every worker the same source update (pickled once)."""
        self.sync += 1
        packed = wire.Packed(SourceUpdate(self.sync, payload))
        try:
            for control in self._controls:
                packed.send(control)
        except OSError as exc:
            self._fail(WorkerError(f"could not update the source in a worker: {exc}"))
        finally:
            packed.close()

    # -- results ---------------------------------------------------------------------
    def receive(self, run: int, timeout_s: float) -> list[Result]:
        """The results of ``run`` that are ready, waiting up to ``timeout_s`` for one.

        Results read for a run that is no longer current were settled already.
        """
        if not self.closed and not self._ready:
            read = self._read_ready()
            # Messages read, none of them a result: if they were the last of
            # ``run`` (its tasks answered "skipped" after a stop), nothing is left
            # to wait for. Without this check, ``join`` after a break slept its
            # whole timeout (10 s) whenever every task still out was one no worker
            # had started. (Counted only then: off the per-batch path.)
            if not self._ready and timeout_s > 0 and (not read or self.in_flight(run)):
                self._poll(timeout_s)
        ready, self._ready = self._ready, []
        return [r for r_run, r in ready if r_run == run]

    def _poll(self, timeout_s: float) -> None:
        for fd, _ in self._epoll.poll(timeout_s):
            if fd == self._results.fileno():
                self._read_ready()
            elif fd in self._owner:
                self._read_ready()  # its last result, if it sent one, comes first
                self._died(self._owner.pop(fd), fd)

    def _read_ready(self) -> int:
        """Read every message waiting; how many were read."""
        read = 0
        while True:
            try:
                message = self._receiver.recv()
            except BlockingIOError:
                return read
            if message is None:
                return read
            read += 1
            msg, fds = message
            if isinstance(msg, Fatal):
                self._fail(SerializationError(msg.message))
                continue
            task = self._inflight.pop((msg.run, msg.pos))
            if isinstance(msg, Skipped) or msg.run < self._cancelled_below:
                for fd in fds:
                    os.close(fd)
                self.ring.discard(task.slot)
                continue
            self._ready.append((msg.run, self._result(msg, task, fds)))

    def _result(self, msg: Done | Failed, task: _InFlight, fds: list[int]) -> Result:
        ring = self.ring
        ring.arrived(task.slot)
        index = task.key if isinstance(task.key, int) else msg.pos
        if isinstance(msg, Failed):
            ring.give_back(task.slot)
            for fd in fds:
                os.close(fd)
            raised = tracebacks.unpack(msg.packed)
            if msg.how == "raised":
                add_note(
                    raised,
                    task.key,
                    msg.pos,
                    task.epoch,
                    f"process worker {msg.worker}",
                )
            return Result(
                msg.pos, None, msg.produce_s, math.nan, 0, raised, msg.worker, index
            )
        one_off = None
        if msg.one_off:
            one_off = Segment(fds.pop(0), msg.one_off, own_fd=False)
        for fd in fds:
            os.close(fd)  # none expected
        self.produce_ema_s += 0.1 * (msg.produce_s - self.produce_ema_s)
        ring.grow(msg.need)
        try:
            batch = codec.decode(msg.stream, msg.places, ring, task.slot, one_off)
        except Exception as exc:
            error = SerializationError(
                f"batch {msg.pos} of epoch {task.epoch} (source index {index}) crossed "
                f"from process worker {msg.worker} but cannot be unpickled here: {exc}"
            )
            error.__cause__ = exc
            return Result(
                msg.pos, None, msg.produce_s, msg.cpu_s, 0, error, msg.worker, index
            )
        return Result(
            msg.pos,
            batch,
            msg.produce_s,
            msg.cpu_s,
            msg.nbytes,
            None,
            msg.worker,
            index,
        )

    # -- liveness --------------------------------------------------------------------
    def check(self) -> None:
        """Raise the pool's failure (a dead worker, an unstartable source), if any."""
        if not self.closed and self.failure is None:
            self._poll(0.0)
        if not self.closed and self.failure is None:
            # The sentinel is a pipe that reads EOF when the worker exits, unless
            # another process forked meanwhile (fork start method) also holds its
            # write end; and waitpid cannot see a child that something else in the
            # program reaped. So ask /proc as well.
            for fd, w in list(self._owner.items()):
                if not start.is_running(self.procs[w].pid):
                    self._read_ready()
                    self._died(self._owner.pop(fd), fd)
                    break
        if self.failure is not None:
            raise self.failure
        if self.closed:
            raise LoaderClosed("the loader was closed: its worker processes are gone")

    def _died(self, w: int, sentinel: int) -> None:
        self._epoll.unregister(sentinel)
        proc = self.procs[w]
        proc.join(_REAP_S)
        if self.closed or self.failure is not None:
            return
        pos_word, run_word, state_word = worker.status_words(w)
        if self.header[state_word] == worker.STARTING:
            self._fail(worker_crashed(w, proc.pid, proc.exitcode, None, None, None,
                                      starting=self.method))  # fmt: skip
            return
        pos, run = int(self.header[pos_word]), int(self.header[run_word])
        task = self._inflight.get((run, pos))
        if task is None:
            self._fail(worker_crashed(w, proc.pid, proc.exitcode, None, None, None))
            return
        index = task.key if isinstance(task.key, int) else pos
        self._fail(worker_crashed(w, proc.pid, proc.exitcode, pos, index, task.epoch))

    def _fail(self, error: StokerError) -> None:
        if self.failure is None:
            self.failure = error

    # -- stopping --------------------------------------------------------------------
    def shutdown(self, timeout_s: float) -> None:
        """Stop every worker (module docstring) and release the pool; idempotent."""
        if self.closed:
            return
        self.closed = True
        for sock in (self._tasks, *self._controls, *self._their_ends):
            sock.close()
        start.stop_processes(self.procs, min(_GRACE_S, timeout_s))
        _consumer_fds.difference_update(self._mine)
        self._epoll.close()
        self._results.close()
        self.arena.close_fd()
