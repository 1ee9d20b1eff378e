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
    *,
    starting: str | None = None,
) -> WorkerCrashed:
    """The error the consumer raises for a worker that died.

    ``starting``: the worker died before it was ready for work; the value is the
    start method, which decides the likely cause and the fix.
    """
    if starting is not None:
        return WorkerCrashed(
            f"process worker {worker} (pid {pid}) died while starting, before it ran "
            f"any batch; {describe_exit(exitcode)}. {_start_fix(starting)}",
            worker=worker,
            exitcode=exitcode,
        )
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


def _start_fix(method: str) -> str:
    if method == "fork":
        return (
            "A forked worker runs no code of yours before its first batch, so look at "
            "what the program does at fork time (a library that aborts in a forked "
            "child); threads (use_multiprocessing=False) avoid forking altogether."
        )
    return (
        f"With start_method={method!r} each worker imports the main script again "
        "before it starts; if that raised (its output is above), fix it, put the "
        'script\'s training code under `if __name__ == "__main__":`, or use '
        "start_method='fork' (the default on Linux), which imports nothing again."
    )
