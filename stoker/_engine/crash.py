"""Turning a dead worker's exit status into a ``WorkerCrashed`` that says what to do."""

from __future__ import annotations

import signal

from stoker._errors import WorkerCrashed

# What usually sends each signal to a data-loading worker, and the fix.
_CAUSES = {
    signal.SIGKILL: (
        "most likely the kernel's out-of-memory killer (or someone ran kill -9): "
        "lower max_queue_size or workers, or make batches smaller"
    ),
    signal.SIGBUS: (
        "shared memory is full (a container's /dev/shm or memory limit): raise the "
        "limit (docker --shm-size) or lower max_queue_size / max_queue_bytes"
    ),
    signal.SIGSEGV: (
        "a crash in native code called by source[i] (an extension module); run the "
        "source on threads or in a plain loop to get its traceback"
    ),
    signal.SIGABRT: "native code called abort() (a failed assertion in a library)",
    signal.SIGTERM: "another process terminated it",
}


def describe_exit(exitcode: int | None) -> str:
    """How the worker ended and the likely cause, in words."""
    if exitcode is None:
        return "it stopped responding"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"it was killed by signal {-exitcode}"
        cause = _CAUSES.get(sig, "")
        text = f"it was killed by {sig.name} ({int(sig)})"
        return f"{text}: {cause}" if cause else text
    return (
        f"it exited with code {exitcode} without raising (os._exit or sys.exit in "
        "source[i], or in a library it calls)"
    )


def worker_crashed(
    worker: int,
    pid: int | None,
    exitcode: int | None,
    pos: int | None,
    index: int | None,
    epoch: int | None,
) -> WorkerCrashed:
    """The error the consumer raises for a worker that died."""
    if pos is None:
        doing = "while idle"
    else:
        doing = f"while computing batch {pos} (source index {index}) of epoch {epoch}"
    message = (
        f"process worker {worker} (pid {pid}) died {doing}; "
        f"{describe_exit(exitcode)}. The epoch stops here; the next one starts fresh "
        "workers."
    )
    return WorkerCrashed(message, worker=worker, index=index, exitcode=exitcode)
