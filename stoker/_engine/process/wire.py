"""How messages cross between the consumer and its process workers.

Every channel is an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket pair: each ``send`` arrives
as one whole message, so several workers can read tasks from one socket (each task
reaches exactly one of them) and write results to one socket, with no lock. A
message is one pickled value plus at most a few file descriptors (``SCM_RIGHTS``);
a value too big for one message travels in a memfd whose fd rides along instead.

The channels of one pool:

* tasks: consumer -> any worker (shared); a list of ``Task``: one task, or a few
  cheap ones.
* results: any worker -> consumer (shared): ``Done``, ``Failed``, ``Skipped``,
  ``Fatal``.
* control: consumer -> one worker: ``SourceUpdate`` between epochs.
"""

from __future__ import annotations

import array
import os
import pickle
import socket
from typing import Any

from stoker._engine.process.messages import flatten, rebuild
from stoker._engine.process.shm import Segment

# Largest pickle sent inline; a kernel socket buffer must hold a few of them.
MAX_INLINE_BYTES = 64 * 1024
_RECV_BYTES = MAX_INLINE_BYTES + 1024
_MAX_FDS = 4
_BIG = "stoker.big"  # marks a message whose pickle lies in the attached memfd


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected SEQPACKET pair, both ends close-on-exec and inheritable by fork."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a, b):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass  # the kernel's default buffer is enough, just shallower
    return a, b


class Packed:
    """A value pickled once, ready to be sent to any number of sockets."""

    def __init__(self, value: Any) -> None:
        self._set(pickle.dumps(_flat(value), protocol=pickle.HIGHEST_PROTOCOL))

    def _set(self, data: bytes) -> None:
        self.segment: Segment | None = None
        if len(data) > MAX_INLINE_BYTES:
            self.segment = Segment.create(len(data), "stoker-msg")
            self.segment.u8[: len(data)] = memoryview(data)
            data = pickle.dumps((_BIG, len(data)))
        self.data = data

    def send(self, sock: socket.socket, fds: tuple[int, ...] = ()) -> None:
        """Send it on ``sock``; raises what the socket raises."""
        if self.segment is not None:
            assert self.segment.fd is not None
            fds = (self.segment.fd, *fds)
        if fds:
            socket.send_fds(sock, [self.data], list(fds))
        else:
            sock.send(self.data)

    def close(self) -> None:
        """Drop the sender's fd of a big value (receivers keep their own)."""
        if self.segment is not None:
            self.segment.close_fd()
            self.segment = None


def _flat(value: Any) -> Any:
    if isinstance(value, list):
        return [flatten(v) for v in value]
    return flatten(value)


def _rebuilt(value: Any) -> Any:
    if isinstance(value, list):
        return [rebuild(v) for v in value]
    return rebuild(value)


def send(sock: socket.socket, value: Any, fds: tuple[int, ...] = ()) -> None:
    """Send ``value`` (and ``fds``) as one message; big values go through a memfd.

    Raises whatever the socket raises (``BlockingIOError`` on a full non-blocking
    socket, ``BrokenPipeError`` when the peer is gone, ``TimeoutError``).
    """
    data = pickle.dumps(_flat(value), protocol=pickle.HIGHEST_PROTOCOL)
    if not fds and len(data) <= MAX_INLINE_BYTES:
        sock.send(data)  # the common case, kept short: it runs once per batch
        return
    packed = Packed.__new__(Packed)
    packed._set(data)
    try:
        packed.send(sock, fds)
    finally:
        packed.close()


_FD_SPACE = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)


class Receiver:
    """Reads messages from one socket into a buffer it reuses."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray(_RECV_BYTES)
        self._view = memoryview(self._buf)

    def recv(self) -> tuple[Any, list[int]] | None:
        """One message: ``(value, fds)``; None at end of stream (the peer is gone).

        Raises ``BlockingIOError`` on a non-blocking socket with nothing to read.
        """
        n, ancillary, _flags, _addr = self.sock.recvmsg_into([self._buf], _FD_SPACE)
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(data[: len(data) - len(data) % got.itemsize])
                fds.extend(got)
        if n == 0:
            for fd in fds:
                os.close(fd)
            return None
        value = pickle.loads(self._view[:n])
        if isinstance(value, tuple) and len(value) == 2 and value[0] == _BIG:
            big = Segment(fds[0], value[1], own_fd=False)
            value = pickle.loads(big.u8[: value[1]].data)
            fds = fds[1:]
        return _rebuilt(value), fds
