"""The loop each process worker runs: take a task, compute the batch, place it, report.

A worker reads tasks from the pool's shared task socket (whoever is free takes the
next one). For each, it first applies the source updates the task needs from its
own control socket (they were sent before the task), then runs ``fetcher(key,
epoch)`` with ``stoker.empty`` pointed at the task's slot, places the batch in
shared memory (``codec.encode``) and sends a small result message. It writes the
position it is computing into the arena header, so that if it dies the consumer can
name the batch.

Messages it sends on the results socket:

* ``("ok", run, pos, worker, produce_s, cpu_s, nbytes, stream, places, need, one_off)``
  (with the one-off segment's fd attached when ``one_off`` > 0);
* ``("error", run, pos, worker, produce_s, kind, packed)``: ``kind`` is ``"raised"``
  (the source raised; ``tracebacks.pack``) or ``"pickle"`` (the batch cannot cross);
* ``("skip", run, pos, worker)``: the task belonged to an epoch the consumer stopped;
* ``("fatal", worker, message)``: the worker cannot start (the source did not
  unpickle); it exits after sending it.

Lifetime: workers ignore SIGINT (Ctrl-C is the consumer's to handle). A watchdog
thread exits the process as soon as the consumer's end of the task socket closes
(``close()``, garbage collection, or the consumer's death) or the parent changes,
even while ``source[i]`` is still running.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import threading
import time
from typing import Any

import numpy as np

from stoker._engine import codec, resync, shm, tracebacks, wire
from stoker._engine.fetch import Fetcher, nbytes
from stoker._engine.pickling import describe
from stoker._errors import SerializationError

# How often the watchdog checks the parent; a closed task socket wakes it at once.
_WATCH_MS = 250
# How long a worker waits for a source update the task says was already sent.
_SYNC_TIMEOUT_S = 60.0
# Header words: [0] = lowest run still wanted; then per worker (position, run).
CANCEL_WORD = 0


def status_words(worker: int) -> tuple[int, int]:
    """Header indices of ``worker``'s (position being computed, its run)."""
    return 1 + 2 * worker, 2 + 2 * worker


def header_bytes(workers: int) -> int:
    """Bytes at the start of the arena that hold the header."""
    return shm.align(8 * (1 + 2 * workers), 4096)


class FdHandle:
    """An fd that reaches a spawned or forkserver child (fork inherits it as is)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction

        return (_rebuild_fd, (reduction.DupFd(self.fd),))


def _rebuild_fd(dup: Any) -> FdHandle:
    return FdHandle(dup.detach())


class Boot:
    """What one worker starts from; crosses to spawn/forkserver children by pickle."""

    def __init__(self, **fields: Any) -> None:
        self.index: int = fields["index"]
        self.fetcher: Fetcher | None = fields["fetcher"]  # fork: inherited as is
        self.blob: bytes | None = fields["blob"]  # spawn/forkserver: pickled once
        self.reseed: bool = fields["reseed"]
        self.arena: FdHandle = fields["arena"]
        self.arena_size: int = fields["arena_size"]
        self.workers: int = fields["workers"]
        self.tasks: socket.socket = fields["tasks"]
        self.results: socket.socket = fields["results"]
        self.control: socket.socket = fields["control"]
        self.close_fds: list[int] = fields["close_fds"]  # fork: the consumer's ends


def _watch(tasks: socket.socket, parent: int) -> None:
    poller = select.poll()
    poller.register(tasks.fileno(), 0)  # no events asked: hang-up and errors only
    while True:
        if poller.poll(_WATCH_MS) or os.getppid() != parent:
            os._exit(0)


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
    header = np.ndarray((1 + 2 * boot.workers,), np.int64, buffer=arena.u8)
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
                "inside a function; or use start_method='fork'."
            )
            wire.send(boot.results, ("fatal", boot.index, message))
            return
    assert fetcher is not None
    fetcher.reseed_globals = boot.reseed
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
        self.pos_word, self.run_word = status_words(boot.index)

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
                self._task(*task)

    def _drain_control(self) -> bool:
        while True:
            try:
                got = self._control.recv()
            except BlockingIOError:
                return True
            if got is None:
                return False
            _, sync, payload = got[0]
            resync.apply(self.fetcher.source, payload)
            self.sync = sync

    def _catch_up(self, sync: int) -> None:
        # The update was sent before the task: it is in the socket, or on its way.
        deadline = time.monotonic() + _SYNC_TIMEOUT_S
        while self.sync < sync and time.monotonic() < deadline:
            if not self._drain_control():
                os._exit(0)
            if self.sync < sync:
                select.select([self.control], [], [], 0.1)

    def _task(
        self,
        run: int,
        epoch: int,
        pos: int,
        key: Any,
        offset: int,
        size: int,
        sync: int,
    ) -> None:
        if sync > self.sync:
            self._catch_up(sync)
        header = self.header
        if run < header[CANCEL_WORD]:
            wire.send(self.results, ("skip", run, pos, self.w))
            return
        header[self.run_word] = run
        header[self.pos_word] = pos
        writer = shm.SlotWriter(self.arena if size else None, offset, size)
        shm.set_writer(writer)
        clock = time.perf_counter
        t0 = clock()
        c0 = time.process_time()
        one_off = None
        try:
            batch = self.fetcher(key, epoch)
            try:
                stream, places, need, one_off = codec.encode(batch, writer)
            except Exception as exc:
                error = self._unpicklable(batch, epoch, pos, key, exc)
                reply: tuple[Any, ...] = ("error", run, pos, self.w, clock() - t0)
                reply += ("pickle", tracebacks.pack(error))
            else:
                cpu = time.process_time() - c0
                size_of = nbytes(batch)
                extra = one_off.size if one_off is not None else 0
                reply = ("ok", run, pos, self.w, clock() - t0, cpu, size_of)
                reply += (stream, places, need, extra)
            del batch
        except BaseException as exc:  # crosses to the consumer, which re-raises it
            reply = ("error", run, pos, self.w, clock() - t0, "raised")
            reply += (tracebacks.pack(exc),)
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
        self, batch: Any, epoch: int, pos: int, key: Any, exc: Exception
    ) -> SerializationError:
        where = f"source[{key}]" if isinstance(key, int) else f"samples {key!r}"
        error = SerializationError(
            f"batch {pos} of epoch {epoch} ({where}) cannot cross from process worker "
            f"{self.w} to the consumer: {describe(batch, 'batch')}. Return numpy "
            "arrays, numbers, strings, and tuples, lists or dicts of them."
        )
        error.__cause__ = exc
        return error
