"""A loader's worker processes: started once, kept across epochs, watched, stopped.

The pool owns the processes, the three kinds of socket (``wire.py``), the shared
memory arena and its slot ring (``shm.py``). It runs only on the consumer's thread:
``receive`` reads whatever results are ready and hands each to the epoch run it
belongs to (``ProcessEpochRun.on_message``), and it waits with one ``epoll`` over the
results socket *and every worker's process sentinel*, so a worker that dies is
noticed in the same wait that would have received its batch: never a hang.

Stopping (``shutdown``): the consumer closes its ends of the task and control
sockets; each worker's watchdog sees the hang-up and exits at once, even inside
``source[i]``. Workers still alive after ``_GRACE_S`` get SIGTERM, then SIGKILL.
With ``fork``, each child first closes its inherited copies of the consumer's ends,
so that only the consumer holds them and its death (even by SIGKILL) hangs them up.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import time
from typing import Any, Protocol

import numpy as np

from stoker._engine import pickling, wire, worker
from stoker._engine.crash import worker_crashed
from stoker._engine.fetch import Fetcher
from stoker._engine.shm import Segment, SlotRing, reservation_bytes
from stoker._errors import LoaderClosed, SerializationError, StokerError, WorkerError
from stoker._options import LoaderOptions, default_start_method

_log = logging.getLogger("stoker")
# After the sockets close, how long workers get to exit before SIGTERM, then SIGKILL.
_GRACE_S = 0.4
# Reaping a process whose sentinel fired: it is exiting, this is only a bound.
_REAP_S = 1.0
# Sending a source update to a worker busy in a long batch: its socket buffer holds
# many updates, so this only bounds a worker that stopped reading altogether.
_CONTROL_SEND_TIMEOUT_S = 30.0


class _Run(Protocol):
    def on_message(self, msg: tuple[Any, ...], fds: list[int]) -> None: ...

    def task_of(self, pos: int) -> tuple[Any, int] | None: ...


def _preload_forkserver() -> None:
    """Have the forkserver import the worker code once, not every child again.

    Only takes effect if this process has not started its forkserver yet; the
    modules already asked for (``__main__`` by default) stay on the list.
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    modules = list(getattr(server, "_preload_modules", None) or ["__main__"])
    if "stoker._engine.worker" not in modules:
        forkserver.set_forkserver_preload([*modules, "stoker._engine.worker"])


# The consumer-side fds of every live pool in this process. A forked worker closes
# them all, so that only the consumer holds them (module docstring).
_consumer_fds: set[int] = set()


def _running(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie), per /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


class WorkerPool:
    """Worker processes with their sockets and shared memory (module docstring)."""

    def __init__(
        self, fetcher: Fetcher, opts: LoaderOptions, budget: int, name: str
    ) -> None:
        self.method = opts.start_method or default_start_method()
        self.workers = opts.workers
        self.failure: StokerError | None = None
        self.closed = False
        self.sync = 0  # source updates sent so far
        self.produce_ema_s = 1.0  # recent seconds per batch (slow until measured)
        self.runs: dict[int, _Run] = {}
        self.procs: list[Any] = []
        blob = None
        if self.method != "fork":
            blob = pickling.dumps_source(fetcher, fetcher.source, self.method)
        self.arena = Segment.create(reservation_bytes(), f"stoker-{os.getpid()}")
        self.header = np.ndarray(
            (1 + 2 * self.workers,), np.int64, buffer=self.arena.u8
        )
        self.header[1::2] = -1  # every worker idle
        self.ring = SlotRing(
            self.arena,
            worker.header_bytes(self.workers),
            budget + 1,
            opts.max_queue_bytes,
        )
        self._tasks, tasks_w = wire.pair()
        self._results, results_w = wire.pair()
        controls = [wire.pair() for _ in range(self.workers)]
        self._controls = [c for c, _ in controls]
        self._epoll = select.epoll()
        self._mine = [
            self._tasks.fileno(),
            self._results.fileno(),
            self._epoll.fileno(),
        ]
        self._mine += [c.fileno() for c in self._controls]
        self._mine.append(self.arena.fd or -1)
        _consumer_fds.update(self._mine)
        seeded = opts.seed is not None
        try:
            for w in range(self.workers):
                boot = worker.Boot(
                    index=w,
                    fetcher=fetcher if self.method == "fork" else None,
                    blob=blob,
                    reseed=seeded
                    if opts.reseed_globals is None
                    else opts.reseed_globals,
                    arena=worker.FdHandle(self.arena.fd or -1),
                    arena_size=self.arena.size,
                    workers=self.workers,
                    tasks=tasks_w,
                    results=results_w,
                    control=controls[w][1],
                    close_fds=[],
                )
                self._start(boot, f"{name}-worker-{w}")
        except BaseException:
            self.shutdown(_GRACE_S)
            raise
        finally:
            for sock in (tasks_w, results_w, *(c for _, c in controls)):
                sock.close()
        self._tasks.setblocking(False)
        self._results.setblocking(False)
        self._receiver = wire.Receiver(self._results)
        for c in self._controls:
            c.settimeout(_CONTROL_SEND_TIMEOUT_S)
        self._epoll.register(self._results.fileno(), select.EPOLLIN)
        self._owner = {}
        for w, proc in enumerate(self.procs):
            self._owner[proc.sentinel] = w
            self._epoll.register(proc.sentinel, select.EPOLLIN)

    def _start(self, boot: worker.Boot, name: str) -> None:
        if self.method == "fork":
            boot.close_fds = sorted(_consumer_fds - {boot.arena.fd})
        elif self.method == "forkserver":
            _preload_forkserver()
        ctx = multiprocessing.get_context(self.method)
        proc = ctx.Process(  # type: ignore[attr-defined]
            target=worker.main, args=(boot,), name=name, daemon=True
        )
        proc.start()
        self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests and diagnostics)."""
        return [p.pid for p in self.procs]

    # -- consumer side of the sockets ----------------------------------------------
    def send_tasks(self, tasks: list[tuple[Any, ...]]) -> bool:
        """Queue tasks for whichever worker is free; False if the socket is full."""
        try:
            wire.send(self._tasks, tasks)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._fail(WorkerError(f"the worker processes are gone ({exc})"))
            return False
        return True

    def send_update(self, payload: bytes) -> None:
        """Send every worker the same source update (pickled once)."""
        self.sync += 1
        packed = wire.Packed(("sync", self.sync, payload))
        try:
            for control in self._controls:
                packed.send(control)
        except OSError as exc:
            self._fail(WorkerError(f"could not update the source in a worker: {exc}"))
        finally:
            packed.close()

    def cancel_below(self, run: int) -> None:
        """Workers skip every queued task of a run older than ``run``."""
        self.header[worker.CANCEL_WORD] = max(run, int(self.header[worker.CANCEL_WORD]))

    def receive(self, timeout_s: float) -> None:
        """Handle the results that are ready, waiting up to ``timeout_s`` for one."""
        if not self.closed and not self._read_ready() and timeout_s > 0:
            self._poll(timeout_s)

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
                if not _running(self.procs[w].pid):
                    self._read_ready()
                    self._died(self._owner.pop(fd), fd)
                    break
        if self.failure is not None:
            raise self.failure
        if self.closed:
            raise LoaderClosed("the loader was closed: its worker processes are gone")

    def _poll(self, timeout_s: float) -> None:
        for fd, _ in self._epoll.poll(timeout_s):
            if fd == self._results.fileno():
                self._read_ready()
            elif fd in self._owner:
                self._read_ready()  # its last result, if it sent one, comes first
                self._died(self._owner.pop(fd), fd)

    def _read_ready(self) -> bool:
        got = False
        while True:
            try:
                message = self._receiver.recv()
            except BlockingIOError:
                return got
            if message is None:
                return got
            got = True
            msg, fds = message
            if msg[0] == "fatal":
                self._fail(SerializationError(msg[2]))
                continue
            run = self.runs.get(msg[1])
            if run is not None:
                run.on_message(msg, fds)
            else:
                for fd in fds:
                    os.close(fd)

    def _died(self, w: int, sentinel: int) -> None:
        self._epoll.unregister(sentinel)
        proc = self.procs[w]
        proc.join(_REAP_S)
        if self.closed or self.failure is not None:
            return
        pos_word, run_word = worker.status_words(w)
        pos: int | None = int(self.header[pos_word])
        index = epoch = None
        run = self.runs.get(int(self.header[run_word]))
        found = run.task_of(pos) if run is not None and pos is not None else None
        if found is None:
            pos = None  # idle, or its result had already arrived
        else:
            key, epoch = found
            index = key if isinstance(key, int) else pos
        self._fail(worker_crashed(w, proc.pid, proc.exitcode, pos, index, epoch))

    def _fail(self, error: StokerError) -> None:
        if self.failure is None:
            self.failure = error

    # -- stopping --------------------------------------------------------------------
    def shutdown(self, timeout_s: float) -> None:
        """Stop every worker (module docstring) and release the pool; idempotent."""
        if self.closed:
            return
        self.closed = True
        for sock in (self._tasks, *self._controls):
            sock.close()
        procs = [p for p in self.procs if p.exitcode is None]
        deadline = time.monotonic() + min(_GRACE_S, timeout_s)
        for action in ("terminate", "kill"):
            while procs and time.monotonic() < deadline:
                multiprocessing.connection.wait(
                    [p.sentinel for p in procs], deadline - time.monotonic()
                )
                procs = [p for p in procs if p.exitcode is None]
            for p in procs:
                getattr(p, action)()
            deadline = time.monotonic() + min(_GRACE_S, timeout_s)
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.exitcode is None:
                _log.warning(
                    "stoker: worker process %s (pid %s) did not exit", p.name, p.pid
                )
            else:
                p.close()
        _consumer_fds.difference_update(self._mine)
        self._epoll.close()
        self._results.close()
        self.arena.close_fd()
