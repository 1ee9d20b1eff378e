"""The runs open in this process: the active-run stack, and the end of them all.

A run registers when it starts and leaves when it ends. At interpreter exit the runs
still open are ended: 'failed' with the traceback if an exception ended the program,
'killed' for Ctrl-C, else 'finished'. In a forked child the parent's runs are
forgotten (their writer did not fork), so the child neither records nor ends them.
Split from ``_run.py``; it knows runs only by their ``status``, ``end`` and ``id``.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import sys
import threading
import traceback
from typing import Any

_log = logging.getLogger("stoker")

_active: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "stoker_track_active", default=()
)
_open_runs: list[Any] = []  # every started, not yet ended run of the process
_open_lock = threading.Lock()
_atexit_registered = False


def drop(_: Any) -> None:
    """Where a loader's reports go once its run has ended."""


def add(run: Any) -> None:
    """``run`` started: it is the innermost active run, and ended at exit."""
    _active.set((*_active.get(), run))
    with _open_lock:
        _open_runs.append(run)
    _register_atexit()


def remove(run: Any) -> None:
    """``run`` ended."""
    _active.set(tuple(r for r in _active.get() if r is not run))
    with _open_lock, contextlib.suppress(ValueError):
        _open_runs.remove(run)


def active_run() -> Any:
    """The innermost running run of this context (else of the process), or None."""
    # A run ended from another thread may linger in this context's stack: skip it.
    for run in reversed(_active.get()):
        if run.status == "running":
            return run
    with _open_lock:
        return _open_runs[-1] if _open_runs else None


def _end_open_runs() -> None:
    with _open_lock:
        runs = list(reversed(_open_runs))
    last = getattr(sys, "last_value", None)  # set when an exception ended the program
    for run in runs:
        if last is not None:
            error = "".join(traceback.format_exception(last))
            status = "killed" if isinstance(last, KeyboardInterrupt) else "failed"
        else:
            status, error = "finished", None
        try:
            run.end(status, error)
        except Exception:
            _log.exception("stoker.track: while ending run %s at exit", run.id)


def _forget_runs_in_child() -> None:
    """In a forked child: the runs belong to the parent, whose writer did not fork.

    The child's reports and logs are dropped and its exit ends no run; only the
    parent records (process workers report through the parent's loader anyway).
    """
    global _open_lock
    _open_lock = threading.Lock()  # it may have been held by another thread
    for run in _open_runs:
        run._put = drop
        run._log_put = drop
    _open_runs.clear()
    _active.set(())


def _register_atexit() -> None:
    global _atexit_registered
    with _open_lock:
        if not _atexit_registered:
            atexit.register(_end_open_runs)
            os.register_at_fork(after_in_child=_forget_runs_in_child)
            _atexit_registered = True
