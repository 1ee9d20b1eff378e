"""What runs on a Ray node for one sweep trial: the command as a subprocess, its
output streamed back to the sweep, its exit code last.

Rule: :func:`run_trial` is the body of a Ray *streaming generator* task. It yields,
in order, one :class:`TrialStarted` (the node and the trial's process group), the
output as ``bytes`` chunks, and one :class:`TrialExit`. The command runs in a
session of its own (its own process group), as ``LocalLauncher`` starts it, so a
stop signals the whole group. Three paths end a group, and each leaves no process
behind:

- the sweep stops the trial: :func:`reap` runs on the same node (pinned there,
  zero CPUs, so a full node still runs it) and signals the group SIGINT, then after
  the grace SIGKILL, as ``LocalLauncher`` does; the command exits and this task
  yields its exit code;
- Ray cancels the task (``ray.cancel``): the ``KeyboardInterrupt`` Ray raises here
  does the same before the task ends;
- the Ray worker running this task dies (a force-cancel, a lost raylet): a watchdog
  in the group (:data:`_WATCHDOG`, the command's parent) sees the end of a pipe
  whose other end only this task holds, and stops the group as above.

Why the watchdog detaches (forks and lets its first process exit at once): Ray
SIGKILLs a dying worker's child processes (``kill_child_processes_on_worker_exit``),
which would kill a watchdog that is the worker's child before it could act, and a
signal to the group's leader alone leaves the command and its children running. A
pipe's end, unlike ``PR_SET_PDEATHSIG``, is seen however the worker dies.

Why a generator rather than one return value: a trial's log on the sweep's machine
fills while the trial runs (``tail -f`` works, as with local trials), and its output
is never held whole in memory on either side.

Why the environment is the node's, then the driver's, then the trial's: a trial
should see what the user exported when starting the sweep (as a local trial does),
but not what only describes the driver's machine or shell (:data:`_HOST_ONLY`), nor
the driver's Ray settings (``RAY_*``), which would point this node's tools at the
wrong place, nor, for a trial that reserved GPUs, the driver's device list
(:data:`DEVICE_VARS`): Ray set the node's to the GPUs it gave the trial.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

# The watchdog: argv is ALIVE_FD STATUS_FD GRACE_S COMMAND... It detaches (module
# docstring), runs the command as its child, stops the group when ALIVE_FD reaches
# its end (the task is gone), and writes the command's exit code to STATUS_FD. Its
# SIGINT handler does nothing (a handler, unlike SIG_IGN, is not inherited), so a
# stop's SIGINT reaches the command and the watchdog still reports the exit.
# No stoker import: it starts in milliseconds.
_WATCHDOG = """
import os, select, signal, subprocess, sys, time
alive, status, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if os.fork():
    os._exit(0)
signal.signal(signal.SIGINT, lambda *_: None)
try:
    child = subprocess.Popen(sys.argv[4:], pass_fds=())
except OSError as exc:
    print(f"stoker sweep --ray: cannot start {sys.argv[4]!r}: {exc}", flush=True)
    os.write(status, b"127")
    sys.exit(127)
while child.poll() is None:
    ready, _, _ = select.select([alive], [], [], 0.1)
    if ready and not os.read(alive, 1):
        os.killpg(0, signal.SIGINT)
        deadline = time.monotonic() + grace
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(0, signal.SIGKILL)
os.write(status, str(child.returncode).encode())
"""

# Output is sent back at most this often, or when this many bytes are waiting.
_FLUSH_EVERY_S = 0.25
_CHUNK_BYTES = 65_536
# After the command exits, its own children may still hold the output open: read
# what they write for at most this long, then end the trial.
_DRAIN_S = 1.0
_POLL_S = 0.05
# What Ray sets on the node for a task with GPUs (NVIDIA, AMD).
DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
_HOST_ONLY = frozenset(
    {
        "HOSTNAME",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "DISPLAY",
        "XAUTHORITY",
        "SSH_AUTH_SOCK",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_TTY",
        "XDG_RUNTIME_DIR",
        "XDG_SESSION_ID",
        "TERM_SESSION_ID",
    }
)


class TrialStarted(NamedTuple):
    """First item of a trial's stream: where its process group runs."""

    node_id: str
    node_ip: str
    hostname: str
    pgid: int

    def describe(self) -> str:
        """How errors name the node (the loader's backend names nodes the same way)."""
        return f"node {self.node_id[:12]} ({self.hostname}, {self.node_ip})"


class TrialExit(NamedTuple):
    """Last item of a trial's stream: the child's exit code (negative: a signal)."""

    returncode: int


def trial_env(
    node_env: Mapping[str, str],
    driver_env: Mapping[str, str],
    trial: Mapping[str, str],
    node_wins: Sequence[str] = (),
) -> dict[str, str]:
    """The child's environment (module docstring: node, then driver, then trial);
    ``node_wins``: names whose value on the node is kept over the driver's."""
    env = dict(node_env)
    env.update(
        (k, v)
        for k, v in driver_env.items()
        if k not in _HOST_ONLY and not k.startswith("RAY_") and k not in node_wins
    )
    env.update(trial)
    return env


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGINT to the group, up to ``grace_s`` for it to go, then SIGKILL."""
    _signal_group(pgid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(_POLL_S)
    _signal_group(pgid, signal.SIGKILL)


def reap(pgid: int, grace_s: float) -> bool:
    """Body of the stop task pinned to a trial's node: stop its process group.

    Returns whether the group was still there.
    """
    if not _group_alive(pgid):
        return False
    stop_group(pgid, grace_s)
    return True


def _refused(message: str, code: int) -> Iterator[Any]:
    yield f"stoker sweep --ray: {message}\n".encode()
    yield TrialExit(code)


def run_trial(
    argv: Sequence[str],
    cwd: str,
    driver_env: Mapping[str, str],
    trial: Mapping[str, str],
    local_store_host: str | None,
    stop_grace_s: float,
    node_wins: Sequence[str] = (),
) -> Iterator[Any]:
    """Body of the trial task (module docstring). ``local_store_host``: the driver's
    hostname when the store is a local SQLite file, which only that host can open;
    ``node_wins``: see :func:`trial_env`."""
    import ray

    ctx = ray.get_runtime_context()
    host = socket.gethostname()
    started = TrialStarted(
        ctx.get_node_id(),
        ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        host,
        os.getpid(),
    )
    if local_store_host is not None and host != local_store_host:
        yield from _refused(
            f"this trial runs on {started.describe()}, but the sweep's store is an "
            f"SQLite file on {local_store_host}, which this node cannot write to; "
            "pass --store postgresql://... (docs/team.md)",
            2,
        )
        return
    if not os.path.isdir(cwd):
        yield from _refused(
            f"the sweep's working directory {cwd} does not exist on "
            f"{started.describe()}: run the sweep from a folder every node has "
            "(a shared file system), see docs/sweep.md",
            2,
        )
        return
    alive_r, alive_w = os.pipe()
    status_r, status_w = os.pipe()
    # Each fd is closed exactly once: a number closed twice may by then belong to
    # one of the Ray worker's own sockets.
    ours = [alive_r, alive_w, status_r, status_w]

    def close(fd: int) -> None:
        if fd in ours:
            ours.remove(fd)
            os.close(fd)

    pgid: int | None = None
    try:
        watchdog = [sys.executable, "-c", _WATCHDOG, str(alive_r), str(status_w)]
        proc = subprocess.Popen(
            [*watchdog, str(stop_grace_s), *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=trial_env(os.environ, driver_env, trial, node_wins),
            start_new_session=True,
            pass_fds=(alive_r, status_w),
        )
        pgid = proc.pid
        close(alive_r)
        close(status_w)
        proc.wait()  # the watchdog's first process, gone once it detached
        yield started._replace(pgid=pgid)
        code = yield from _stream(proc, status_r)
        yield TrialExit(code)
    except KeyboardInterrupt:
        # ray.cancel: stop the whole group before this task ends.
        if pgid is not None:
            stop_group(pgid, stop_grace_s)
        raise
    finally:
        for fd in list(ours):
            close(fd)


def _stream(
    proc: subprocess.Popen[bytes], status_fd: int
) -> Generator[bytes, None, int]:
    """Yield the output until the watchdog reports the exit; return the exit code
    (-SIGKILL when the group was killed before it could report)."""
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    waiting = bytearray()
    status = bytearray()
    flushed = time.monotonic()
    exited_at: float | None = None
    watch = [out, status_fd]
    try:
        while watch:
            ready, _, _ = select.select(watch, [], [], _POLL_S)
            now = time.monotonic()
            for fd in ready:
                data = os.read(fd, _CHUNK_BYTES)
                if not data:
                    watch.remove(fd)  # every writer of it is gone
                    if fd == status_fd:
                        exited_at = now
                elif fd == out:
                    waiting += data
                else:
                    status += data
            if waiting and (
                len(waiting) >= _CHUNK_BYTES or now - flushed >= _FLUSH_EVERY_S
            ):
                yield bytes(waiting)
                waiting.clear()
                flushed = now
            # The command's own children may hold the output open after it ended.
            if exited_at is not None and now - exited_at > _DRAIN_S:
                break
    finally:
        proc.stdout.close()
    if waiting:
        yield bytes(waiting)
    text = status.decode().strip()
    return int(text) if text else -signal.SIGKILL
