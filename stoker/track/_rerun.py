"""Re-running a recorded run: its command, at its commit, with its uncommitted diff.

The recorded repository gets a temporary detached ``git worktree`` at the run's
commit (the user's checkout, index and branches are not touched); the recorded diff
is applied there with ``git apply``; the recorded command line (``sys.orig_argv``)
runs in the matching directory of the worktree, with paths inside the repository
mapped into it, the recorded interpreter, and ``STOKER_STORE`` pointing at the same
store. The child's ``stoker.track`` runs are tagged ``rerun_of=<id>``, which is how the
new runs are found and their params checked against the original's.

Refused, with the reason and nothing run: a run with no commit recorded, a commit
the repository no longer has, uncommitted changes too large to have been recorded, a
diff that no longer applies. What a rerun cannot bring back: files ignored by git,
data outside the repository, environment variables, other package versions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track._query import StorePath, get_run, git_diff, list_runs
from stoker.track._run import RERUN_ENV
from stoker.track._sqlite import STORE_ENV, resolve_path

_GIT_TIMEOUT_S = 300.0  # a worktree of a large repository takes a while to check out
_POLL_S = 0.5
_STOP_TIMEOUT_S = 10.0


@dataclasses.dataclass
class RerunResult:
    """What :func:`rerun` did.

    Attributes:
        returncode: the command's exit code.
        argv: the command as run.
        cwd: where it ran (inside the worktree).
        new_run_ids: runs the command recorded, tagged ``rerun_of``.
        param_differences: per new run, {param: (original, new)} where they differ.
        worktree: the worktree's path if kept, else None (it was removed).
        notes: what the recording said it could not capture (e.g. untracked files
            beyond the limit), so the rerun may differ there.
    """

    returncode: int
    argv: list[str]
    cwd: str
    new_run_ids: list[int]
    param_differences: dict[int, dict[str, tuple[Any, Any]]]
    worktree: str | None
    notes: list[str]


def _git(repo: Path | str, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=stdin,
        capture_output=True,
        timeout=_GIT_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip())
    return proc.stdout.decode(errors="replace").strip()


def _check(run: dict[str, Any], diff: bytes | None, repo: Path) -> None:
    rid = run["id"]
    if not run["command"]:
        raise StoreError(f"run {rid} has no recorded command; nothing to re-run")
    if not run["git_commit"]:
        why = run["git_note"] or "no git information was recorded"
        raise StoreError(f"cannot re-run run {rid}: {why}")
    if run["git_dirty"] and diff is None:
        raise StoreError(
            f"cannot re-run run {rid}: it had uncommitted changes that were not "
            f"recorded ({run['git_note']})"
        )
    try:
        _git(repo, "rev-parse", "--show-toplevel")
    except (RuntimeError, OSError) as e:
        raise StoreError(
            f"cannot re-run run {rid}: the repository it ran in ({repo}) is not "
            f"there ({e}); pass --repo PATH to a clone of it"
        ) from None
    commit = run["git_commit"]
    try:
        _git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except RuntimeError:
        raise StoreError(
            f"cannot re-run run {rid}: commit {commit[:12]} is no longer in the "
            f"repository at {repo} (rebased or amended away and garbage-collected?). "
            "Fetch it, or pass --repo PATH to a clone that has it; nothing was run."
        ) from None


def _command(run: dict[str, Any], worktree: Path) -> tuple[list[str], Path]:
    root = run["git_root"]

    def into(arg: str) -> str:
        if arg == root or arg.startswith(root + os.sep):
            return str(worktree / os.path.relpath(arg, root))
        return arg

    argv = [into(a) for a in run["command"]]
    exe = run["executable"]
    argv[0] = exe if exe and os.path.exists(exe) else sys.executable
    rel = os.path.relpath(run["cwd"], root) if run["cwd"] else "."
    return argv, worktree / (rel if not rel.startswith("..") else ".")


def _wait(proc: subprocess.Popen[bytes]) -> int:
    try:
        while True:
            try:
                return proc.wait(timeout=_POLL_S)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_STOP_TIMEOUT_S)
        raise


def rerun(
    run_id: int,
    store: StorePath = None,
    *,
    repo: str | os.PathLike[str] | None = None,
    keep: bool = False,
) -> RerunResult:
    """Re-execute a recorded run's command at its commit (see the module docstring).

    Args:
        run_id: the run to re-run.
        store: the store's path; the new run is recorded in the same store.
        repo: the repository to take the commit from; default the recorded one.
        keep: keep the temporary worktree (its path is in the result).

    Returns:
        What ran, its exit code and the runs it recorded.

    Raises:
        StoreError: the run cannot be re-run; the message says why. Nothing ran.
    """
    store_path = resolve_path(store)
    run = get_run(run_id, store_path)
    diff = git_diff(run_id, store_path)
    repo_path = Path(repo or run["git_root"] or ".").absolute()
    _check(run, diff, repo_path)
    before = {r["id"] for r in list_runs(store_path, tags={"rerun_of": str(run_id)})}
    tmp = Path(tempfile.mkdtemp(prefix=f"stoker-rerun-{run_id}-"))
    worktree = tmp / "worktree"
    try:
        try:
            _git(
                repo_path,
                "worktree",
                "add",
                "--detach",
                str(worktree),
                run["git_commit"],
            )
            if diff:
                _git(worktree, "apply", "--binary", "--whitespace=nowarn", stdin=diff)
        except RuntimeError as e:
            raise StoreError(
                f"cannot re-run run {run_id}: preparing commit "
                f"{run['git_commit'][:12]} with its recorded diff failed: {e}"
            ) from None
        argv, cwd = _command(run, worktree)
        env = {**os.environ, STORE_ENV: str(store_path), RERUN_ENV: str(run_id)}
        started = time.time()
        proc = subprocess.Popen(argv, cwd=cwd, env=env)
        code = _wait(proc)
    finally:
        if not keep:
            _remove_worktree(repo_path, worktree, tmp)
    new = [
        r
        for r in list_runs(store_path, tags={"rerun_of": str(run_id)}, since=started)
        if r["id"] not in before
    ]
    original = run["params"]
    differences = {
        r["id"]: {
            k: (original.get(k), r["params"].get(k))
            for k in sorted(set(original) | set(r["params"]))
            if original.get(k) != r["params"].get(k)
        }
        for r in new
    }
    return RerunResult(
        returncode=code,
        argv=argv,
        cwd=str(cwd),
        new_run_ids=sorted(r["id"] for r in new),
        param_differences=differences,
        worktree=str(worktree) if keep else None,
        notes=[run["git_note"]] if run["git_note"] else [],
    )


def _remove_worktree(repo: Path, worktree: Path, tmp: Path) -> None:
    failures = (RuntimeError, OSError, subprocess.TimeoutExpired)
    # Not created, or already gone: the prune below makes git forget it.
    with contextlib.suppress(*failures):
        _git(repo, "worktree", "remove", "--force", str(worktree))
    shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(*failures):
        _git(repo, "worktree", "prune")
