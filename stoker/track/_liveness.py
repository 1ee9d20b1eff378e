"""Whether a 'running' run's process is gone, so a reader can mark the run killed.

A run records its host, pid and the pid's start time; its writer thread refreshes
``heartbeat_at`` every :data:`HEARTBEAT_EVERY_S`. A reader presumes the run killed when:

- it is on this host and no process with that pid and start time exists (a SIGKILL,
  an OOM kill, a power-off): decided at once, since a run that ends normally records
  its own status before its process exits;
- it is on another host (where the pid means nothing here) and its heartbeat is older
  than :data:`REMOTE_STALE_S`.

A live process whose heartbeat is stale (stopped with Ctrl-Z, or its store locked) is
left 'running'. If a run is ever marked killed while its process still lives, its next
heartbeat sets it back to 'running'.
"""

from __future__ import annotations

import os
import socket
from typing import Any

# How often the writer thread refreshes a run's heartbeat.
HEARTBEAT_EVERY_S = 1.0
# Another host's run is presumed dead after this long without a heartbeat: long
# enough that a busy store or a slow network file system does not trip it.
REMOTE_STALE_S = 60.0
# psutil reports create times rounded to the clock tick; allow that much difference.
_TOLERANCE_S = 0.05


def host() -> str:
    """This machine's host name, as runs record it."""
    return socket.gethostname()


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if unknown."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil missing, no such process, or access denied
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell: assume alive rather than mark a live run killed
    return True


def process_alive(pid: int, started_at: float | None) -> bool:
    """Whether the process that was ``pid`` (started at ``started_at``) still runs."""
    if pid <= 0 or not _pid_exists(pid):
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, waiting for its parent to reap it
        now_started = float(proc.create_time())
    except ImportError:
        return True
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # access denied: it exists
    # A different start time means the pid was reused by a new process.
    return started_at is None or abs(now_started - started_at) <= _TOLERANCE_S


def presumed_dead(
    run: dict[str, Any], now: float, this_host: str | None = None
) -> bool:
    """Whether a 'running' run row (host, pid, pid_started_at, heartbeat_at) is dead."""
    if run["host"] == (this_host or host()):
        return not process_alive(run["pid"], run["pid_started_at"])
    return bool(now - run["heartbeat_at"] > REMOTE_STALE_S)
