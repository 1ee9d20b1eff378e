"""How a trial is started and stopped: behind a small protocol, so a Ray launcher
can place trials on a cluster without touching the sweep loop.

Rule for the local launcher: each trial is a subprocess in its own session (its own
process group), with stdout and stderr to its log file. Stopping a trial signals the
whole group: SIGINT first (a tracked run records 'killed' and flushes), then after
:data:`STOP_GRACE_S` SIGKILL, so a trial's own workers and children go too and no
orphan is left. Why a new session rather than the terminal's group: a Ctrl-C reaches
the sweep alone, which then stops every trial itself, in order, and records it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

# After SIGINT, a trial gets this long to record its run and exit before SIGKILL.
STOP_GRACE_S = 5.0
_POLL_S = 0.05


class Handle(Protocol):
    """A started trial.

    A handle may also have a ``lost`` attribute: None, or why the infrastructure
    ended the trial (``RayTrial``: its node was lost). The sweep then records the
    trial 'killed' with that reason, not 'failed' with the exit code ``poll``
    returned, and ``--resume`` runs it again. A local process is never lost.
    """

    def poll(self) -> int | None:
        """The exit code once the trial ended, else None; never blocks."""

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """Interrupt the trial and everything it started; returns its exit code."""


class Launcher(Protocol):
    """Starts trials (the local one here; a Ray one places them on a cluster)."""

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> Handle:
        """Start ``argv`` with ``env`` added to the environment, output to the log."""


class _Process:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    def poll(self) -> int | None:
        return self._proc.poll()

    def _signal_group(self, sig: int) -> None:
        # The group may be gone already.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        self._signal_group(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        # Even when the leader exited, its children may linger in the group.
        self._signal_group(signal.SIGKILL)
        try:
            return self._proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            return -signal.SIGKILL


class LocalLauncher:
    """Runs each trial as a subprocess of this machine; see the module docstring."""

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> Handle:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )
        return _Process(proc)
