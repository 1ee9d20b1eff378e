"""What a run records about where it ran: command, code version and environment.

Called once per run on the writer thread, so the git calls never delay the training
loop. Nothing here raises: whatever cannot be found is left out and explained in
``git_note``. Environment variables are deliberately not recorded (they hold secrets);
the command line is, with URL passwords masked, so do not pass other secrets as
arguments to a tracked program.

The uncommitted diff is ``git diff HEAD --binary`` (staged and unstaged changes to
tracked files) plus every untracked, non-ignored file as a creation, so
``stoker runs rerun`` can rebuild the working tree the run saw. A diff larger than
:data:`MAX_DIFF_BYTES` is not stored, and the note says so.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from stoker.track._liveness import host
from stoker.track._url import mask

MAX_DIFF_BYTES = 10_000_000
# Untracked files beyond this many are not put in the diff (a forgotten dataset
# directory would otherwise be copied into every run).
MAX_UNTRACKED_FILES = 200
_GIT_TIMEOUT_S = 20.0


def command() -> dict[str, Any]:
    """The command line as started (``sys.orig_argv``), interpreter and cwd.

    A password in a URL on the command line (``--store postgresql://u:pw@h/db``) is
    masked: it is not recorded.
    """
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return {
        "command": json.dumps([mask(a) for a in argv]),
        "executable": sys.executable,
        "cwd": os.getcwd(),
    }


def environment() -> dict[str, Any]:
    """Python, installed package versions, host, CPUs and memory."""
    from importlib import metadata

    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": host(),
        "cpu_count": os.cpu_count(),
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }
    try:
        import psutil

        env["physical_cpus"] = psutil.cpu_count(logical=False)
        env["memory_bytes"] = int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        pass
    return env


def _git(root: Path | str, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
    proc = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        timeout=_GIT_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode not in ok:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def git_state(cwd: str) -> dict[str, Any]:
    """The ``runs`` git columns for the repository holding ``cwd`` (or a note)."""
    try:
        root = _git(cwd, "rev-parse", "--show-toplevel").decode().strip()
    except FileNotFoundError:
        return {"git_note": "git is not installed"}
    except (RuntimeError, subprocess.TimeoutExpired, OSError):
        return {"git_note": "not started inside a git repository"}
    out: dict[str, Any] = {"git_root": root}
    try:
        out["git_commit"] = _git(root, "rev-parse", "--verify", "HEAD").decode().strip()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        out["git_note"] = f"no commit to record (an empty repository?): {e}"
        return out
    try:
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD").decode().strip()
        out["git_branch"] = None if branch == "HEAD" else branch  # detached
        out.update(_diff(root))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        out["git_note"] = f"git failed while recording the diff: {e}"
    return out


def _diff(root: str) -> dict[str, Any]:
    diff = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
    untracked = [
        p
        for p in _git(root, "ls-files", "--others", "--exclude-standard", "-z")
        .decode("utf-8", "surrogateescape")
        .split("\0")
        if p
    ]
    notes = []
    if len(untracked) > MAX_UNTRACKED_FILES:
        notes.append(
            f"{len(untracked)} untracked files: only the first "
            f"{MAX_UNTRACKED_FILES} are in the diff"
        )
        untracked = untracked[:MAX_UNTRACKED_FILES]
    parts = [diff]
    size = len(diff)
    too_big = []
    for path in untracked:
        try:
            # Check before diffing: a forgotten dataset must not be read in full.
            if size + os.path.getsize(os.path.join(root, path)) > MAX_DIFF_BYTES:
                too_big.append(path)
                continue
        except OSError:
            continue  # vanished, or a broken symlink
        # --no-index exits 1 when the files differ, which they always do here.
        part = _git(
            root,
            "diff",
            "--no-index",
            "--binary",
            "--no-color",
            "--",
            os.devnull,
            path,
            ok=(0, 1),
        )
        parts.append(part)
        size += len(part)
    dirty = size > 0 or bool(too_big)
    if size > MAX_DIFF_BYTES or too_big:
        shown = ", ".join(too_big[:5]) + (", ..." if len(too_big) > 5 else "")
        notes.append(
            f"the uncommitted changes exceed {MAX_DIFF_BYTES // 1_000_000} MB"
            + (f" (untracked: {shown})" if too_big else "")
            + " and were not recorded; commit or ignore them to make runs "
            "re-runnable"
        )
        return {"git_dirty": 1, "git_diff": None, "git_note": "; ".join(notes)}
    return {
        "git_dirty": int(dirty),
        "git_diff": b"".join(parts) if dirty else None,
        "git_note": "; ".join(notes) or None,
    }
