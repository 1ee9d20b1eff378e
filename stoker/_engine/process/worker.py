"""The loop each process worker runs: take a task, compute the batch, place it, report.

A worker reads :class:`~messages.Task` lists from the pool's shared task socket
(whoever is free takes the next one). For each task it first applies the source
updates the task needs from its own control socket (they were sent before the task),
then runs ``fetcher(key, epoch)`` with ``stoker.empty`` pointed at the task's slot,
places the batch in shared memory (``codec.encode``) and sends a small reply
(``messages.py`` lists them). It writes the position it is computing into the arena
header, so that if it dies the consumer can name the batch.

Start-up, in this order (the consumer's ``Boot`` says what to use):

1. ignore SIGINT (Ctrl-C is the consumer's to handle); with ``fork``, close the
   inherited copies of the consumer's socket ends (``pool.py`` says why);
2. one thread for intra-op work in the frameworks already imported (torch): a forked
   child must not wake a thread pool that did not survive the fork, and N workers
   each running a pool of cores' threads would oversubscribe the machine. torch's
   DataLoader does the same;
3. seed ``random`` and ``numpy.random`` (and torch's generator, if imported) from
   ``(seed, pool generation, worker)`` (seeding rule 5), so that forked workers do
   not all continue the parent's stream;
4. mark itself started in the header: a worker that dies before this died in
   start-up, and the consumer says so.

Lifetime: a watchdog thread exits the process as soon as the consumer's end of the
task socket closes (``close()``, garbage collection, or the consumer's death) or the
parent changes, even while ``source[i]`` is still running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from stoker._engine import seeding, tracebacks
from stoker._engine.fetch import Fetcher
from stoker._engine.pickling import describe
from stoker._engine.process import codec, resync, shm, wire
from stoker._engine.process.messages import (
    Done,
    Failed,
    Fatal,
    Reply,
    Skipped,
    SourceUpdate,
    Task,
)
from stoker._errors import SerializationError
from stoker._tree import nbytes

# How often the watchdog checks the parent; a closed task socket wakes it at once.
_WATCH_MS = 250
# How long a worker waits for a source update the task says was already sent.
_SYNC_TIMEOUT_S = 60.0
# Header words: [0] = lowest run still wanted; then per worker (position, run, state).
CANCEL_WORD = 0
_WORDS_PER_WORKER = 3
STARTING = 0
STARTED = 1


def status_words(worker: int) -> tuple[int, int, int]:
    """Header indices of ``worker``'s (position being computed, its run, state)."""
    base = 1 + _WORDS_PER_WORKER * worker
    return base, base + 1, base + 2


def header_words(workers: int) -> int:
    """Number of int64 words in the arena header."""
    return 1 + _WORDS_PER_WORKER * workers


def header_bytes(workers: int) -> int:
    """Bytes at the start of the arena that hold the header."""
    return shm.align(8 * header_words(workers), 4096)


class FdHandle:
    """An fd that reaches a spawned or forkserver child (fork inherits it as is)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction

        return (_rebuild_fd, (reduction.DupFd(self.fd),))


def _rebuild_fd(dup: Any) -> FdHandle:
    return FdHandle(dup.detach())


@dataclasses.dataclass
class Boot:
    """What one worker starts from; crosses to spawn/forkserver children by pickle.

    Attributes:
        index: the worker's index in the pool.
        fetcher: ``fork``: the consumer's own fetcher, inherited as is.
        blob: ``spawn``/``forkserver``: the fetcher, pickled once for every worker.
        reseed: reseed the global generators before every batch (seeding rule 4).
        seed: the loader's root seed (seeding rule 5).
        generation: how many pools this loader started before this one.
        arena: the shared-memory arena's fd; ``arena_size`` its size.
        workers: the pool's size (for the header layout).
        tasks, results, control: the worker's ends of the three sockets.
        close_fds: ``fork``: the consumer's fds this child inherited, to close.
    """

    index: int
    fetcher: Fetcher | None
    blob: bytes | None
    reseed: bool
    seed: int
    generation: int
    arena: FdHandle
    arena_size: int
    workers: int
    tasks: socket.socket
    results: socket.socket
    control: socket.socket
    close_fds: list[int]


def _watch(tasks: socket.socket, parent: int) -> None:
    poller = select.poll()
    poller.register(tasks.fileno(), 0)  # no events asked: hang-up and errors only
    while True:
        if poller.poll(_WATCH_MS) or os.getppid() != parent:
            os._exit(0)


def _settle_frameworks(seed: int, generation: int, worker: int, forked: bool) -> None:
    """Steps 2 and 3 of the start-up (module docstring).

    A forked child seeds torch's CPU generator alone: CUDA cannot run in a forked
    child at all, and ``torch.manual_seed`` (every device) costs 1.6 ms there
    against 0.06 ms, a tenth of the time to the first batch.
    """
    seeding.seed_worker_globals(seed, generation, worker)
    torch = sys.modules.get("torch")  # only if the program already imported it
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.set_num_threads(1)
            torch_seed = seeding.worker_seed(seed, generation, worker)
            if forked:
                torch.default_generator.manual_seed(torch_seed)
            else:
                torch.manual_seed(torch_seed)


def main(boot: Boot) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in boot.close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    parent = os.getppid()
    threading.Thread(
        target=_watch, args=(boot.tasks, parent), name="stoker-watchdog", daemon=True
    ).start()
    arena = shm.Segment(boot.arena.fd, boot.arena_size, own_fd=False)
    header = np.ndarray((header_words(boot.workers),), np.int64, buffer=arena.u8)
    fetcher = boot.fetcher
    if fetcher is None:
        try:
            fetcher = pickle.loads(boot.blob or b"")
        except BaseException as exc:
            message = (
                f"process worker {boot.index} could not unpickle the source: "
                f"{type(exc).__name__}: {exc}. The class of the source (and of what "
                "it holds) must be importable by name in a fresh interpreter: define "
                "it at module level in an importable file, not in a notebook cell or "
                "inside a function; or use start_method='fork' (the default on Linux)."
            )
            wire.send(boot.results, Fatal(boot.index, message))
            return
    assert fetcher is not None
    fetcher.reseed_globals = boot.reseed
    _settle_frameworks(boot.seed, boot.generation, boot.index, boot.blob is None)
    header[status_words(boot.index)[2]] = STARTED
    _Loop(boot, fetcher, arena, header).run()


class _Loop:
    def __init__(
        self, boot: Boot, fetcher: Fetcher, arena: shm.Segment, header: np.ndarray
    ) -> None:
        self.w = boot.index
        self.fetcher = fetcher
        self.arena = arena
        self.header = header
        self.tasks = boot.tasks
        self.results = boot.results
        self.control = boot.control
        self._control = wire.Receiver(boot.control)
        self.sync = 0  # last source update applied
        self.pos_word, self.run_word, _ = status_words(boot.index)

    def run(self) -> None:
        # A blocking receive wakes one waiting worker per task (poll would wake all).
        self.tasks.setblocking(True)
        self.control.setblocking(False)
        self.results.setblocking(True)
        tasks = wire.Receiver(self.tasks)
        while True:
            got = tasks.recv()
            if got is None:
                return
            for task in got[0]:
                self._task(task)

    def _drain_control(self) -> bool:
        while True:
            try:
                got = self._control.recv()
            except BlockingIOError:
                return True
            if got is None:
                return False
            update: SourceUpdate = got[0]
            self.fetcher.source = resync.apply(self.fetcher.source, update.payload)
            self.sync = update.sync

    def _catch_up(self, sync: int) -> None:
        # The update was sent before the task: it is in the socket, or on its way.
        deadline = time.monotonic() + _SYNC_TIMEOUT_S
        while self.sync < sync and time.monotonic() < deadline:
            if not self._drain_control():
                os._exit(0)
            if self.sync < sync:
                select.select([self.control], [], [], 0.1)

    def _task(self, task: Task) -> None:
        if task.sync > self.sync:
            self._catch_up(task.sync)
        header = self.header
        run, pos, w = task.run, task.pos, self.w
        if run < header[CANCEL_WORD]:
            wire.send(self.results, Skipped(run, pos, w))
            return
        header[self.run_word] = run
        header[self.pos_word] = pos
        writer = shm.SlotWriter(
            self.arena if task.size else None, task.offset, task.size
        )
        shm.set_writer(writer)
        clock = time.perf_counter
        t0 = clock()
        c0 = time.process_time()
        one_off = None
        reply: Reply
        try:
            batch = self.fetcher(task.key, task.epoch)
            try:
                stream, places, need, one_off = codec.encode(batch, writer)
            except Exception as exc:
                error = self._unpicklable(batch, task, exc)
                reply = Failed(
                    run, pos, w, clock() - t0, "pickle", tracebacks.pack(error)
                )
            else:
                cpu = time.process_time() - c0
                extra = one_off.size if one_off is not None else 0
                reply = Done(
                    run, pos, w, clock() - t0, cpu, nbytes(batch), stream, places, need,
                    extra,
                )  # fmt: skip
            del batch
        except BaseException as exc:  # crosses to the consumer, which re-raises it
            reply = Failed(run, pos, w, clock() - t0, "raised", tracebacks.pack(exc))
        finally:
            shm.set_writer(None)
        try:
            if one_off is not None and one_off.fd is not None:
                wire.send(self.results, reply, (one_off.fd,))
            else:
                wire.send(self.results, reply)
        finally:
            if one_off is not None:
                one_off.close_fd()
            header[self.pos_word] = -1

    def _unpicklable(
        self, batch: Any, task: Task, exc: Exception
    ) -> SerializationError:
        key = task.key
        where = f"source[{key}]" if isinstance(key, int) else f"samples {key!r}"
        error = SerializationError(
            f"batch {task.pos} of epoch {task.epoch} ({where}) cannot cross from "
            f"process worker {self.w} to the consumer: {describe(batch, 'batch')}. "
            "Return numpy arrays, numbers, strings, and tuples, lists or dicts of them."
        )
        error.__cause__ = exc
        return error
