"""Starting and stopping worker processes, and whether they can start at all.

Stopping (:func:`stop_processes`): the pool has already closed its sockets, which
makes each worker exit on its own; those still alive after the grace period get
SIGTERM, then SIGKILL, and a worker that outlives even that is logged, never waited
for forever. Liveness (:func:`is_running`) asks ``/proc``, because a sentinel pipe
can be held open by a later fork and ``waitpid`` misses a child reaped elsewhere.

The main guard, decided before any worker starts:

``spawn`` and ``forkserver`` children import the main script again (as
``__mp_main__``) to find the source's class. A script that creates its loader at
module level, outside ``if __name__ == "__main__":`` (how most Keras 2 scripts are
written), would then start workers from inside each worker: Python refuses with
"An attempt has been made to start a new process before the current process has
finished its bootstrapping phase", once per worker, and the loader would only see
workers that died. So before the first worker starts, :func:`check_main_guard`
finds the line of the main script that is creating the loader and, when it runs
unguarded at module level, raises ``ConfigError`` with the one-line fix.

``fork`` (the default on Linux) imports nothing again, so any script works with it.
"""

from __future__ import annotations

import ast
import functools
import logging
import multiprocessing
import multiprocessing.connection
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from stoker._errors import ConfigError

_log = logging.getLogger("stoker")
_WORKER_MODULE = "stoker._engine.process.worker"


def start_process(method: str, target: Callable[..., None], arg: Any, name: str) -> Any:
    """Start ``target(arg)`` in a new daemon process with start method ``method``."""
    if method == "forkserver":
        _preload_forkserver()
    ctx = multiprocessing.get_context(method)
    proc = ctx.Process(target=target, args=(arg,), name=name, daemon=True)  # type: ignore[attr-defined]
    proc.start()
    return proc


def _preload_forkserver() -> None:
    """Have the forkserver import the worker code once, not every child again."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    modules = list(getattr(server, "_preload_modules", None) or ["__main__"])
    if _WORKER_MODULE not in modules:
        forkserver.set_forkserver_preload([*modules, _WORKER_MODULE])


def stop_processes(procs: list[Any], grace_s: float) -> None:
    """Wait ``grace_s`` for ``procs`` to exit, then SIGTERM, then SIGKILL (above)."""
    alive = [p for p in procs if p.exitcode is None]
    deadline = time.monotonic() + grace_s
    for action in ("terminate", "kill"):
        while alive and time.monotonic() < deadline:
            multiprocessing.connection.wait(
                [p.sentinel for p in alive], deadline - time.monotonic()
            )
            alive = [p for p in alive if p.exitcode is None]
        for p in alive:
            getattr(p, action)()
        deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.exitcode is None:
            _log.warning(
                "stoker: worker process %s (pid %s) did not exit", p.name, p.pid
            )
        else:
            p.close()


def is_running(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie), per /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


@functools.lru_cache(maxsize=8)
def _guarded_lines(path: str) -> tuple[tuple[int, int], ...] | None:
    """Line ranges under ``if __name__ == "__main__":`` in ``path`` (None: unknown)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            ranges.append((node.lineno, node.end_lineno or node.lineno))
    return tuple(ranges)


def _is_main_test(test: ast.expr) -> bool:
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and texts)


def _main_module_frame(path: str) -> FrameType | None:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and code.co_filename == path:
            return frame
        frame = frame.f_back
    return None


def unguarded_line(main_file: str | None = None) -> int | None:
    """The line of the main script running unguarded at module level, or None.

    None also when that cannot be known (no main file, an interactive session, a
    loader created from a function the guarded block called).
    """
    path = main_file or getattr(sys.modules.get("__main__"), "__file__", None)
    if not path:
        return None
    frame = _main_module_frame(path)
    if frame is None:
        return None
    ranges = _guarded_lines(path)
    if ranges is None:
        return None
    line = frame.f_lineno
    if any(lo <= line <= hi for lo, hi in ranges):
        return None
    return line


def check_main_guard(method: str) -> None:
    """Raise ``ConfigError`` if ``method`` would re-run unguarded code (docstring).

    Raises:
        ConfigError: the main script creates the loader outside its main guard and
            ``method`` re-imports the main script in each worker.
    """
    if method == "fork":
        return
    line = unguarded_line()
    if line is None:
        return
    path = getattr(sys.modules["__main__"], "__file__", "the main script")
    raise ConfigError(
        f"{path}, line {line}, starts process workers at module level, outside "
        f'`if __name__ == "__main__":`. With start_method={method!r} every worker '
        "imports the main script again and would run that line too. Put the "
        'script\'s training code under `if __name__ == "__main__":`, or use '
        "start_method='fork' (the default on Linux), which imports nothing again."
    )
