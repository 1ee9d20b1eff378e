"""``stoker runs rerun`` on a scratch git repository made in tmp_path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

import stoker.track.api as T
from stoker.cli import main

_TRAIN_COMMITTED = """
import sys
from stoker.track.api import track

SCALE = 1.0
lr = float(sys.argv[1])
with track("scratch", params={"lr": lr, "scale": SCALE}) as run:
    run.log(step=0, loss=lr * SCALE)
"""

# The uncommitted version: a changed constant and an import of an untracked file.
_TRAIN_DIRTY = """
import sys
from stoker.track.api import track
from helper import OFFSET

SCALE = 2.0
lr = float(sys.argv[1])
with track("scratch", params={"lr": lr, "scale": SCALE}) as run:
    run.log(step=0, loss=lr * SCALE + OFFSET)
"""

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo, *args):
    env = {**os.environ, **_GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.timeout(120)
def test_rerun_rebuilds_commit_and_diff_then_refuses_when_the_commit_is_gone(
    tmp_path,
):
    repo = tmp_path / "repo"
    repo.mkdir()
    store = tmp_path / "store.db"
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(_TRAIN_COMMITTED)
    (repo / ".gitignore").write_text("*.db\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    commit = git(repo, "rev-parse", "HEAD").strip()
    (repo / "train.py").write_text(_TRAIN_DIRTY)
    (repo / "helper.py").write_text("OFFSET = 0.25\n")

    # An absolute script path: the rerun must map it into the worktree.
    env = {**os.environ, "STOKER_STORE": str(store)}
    subprocess.run(
        [sys.executable, str(repo / "train.py"), "0.5"],
        cwd=repo,
        env=env,
        check=True,
        timeout=60,
    )
    (original,) = T.list_runs(store)
    first = T.get_run(original["id"], store)
    assert first["git_commit"] == commit and first["git_branch"] == "main"
    assert first["git_dirty"] == 1 and first["git_diff_bytes"] > 0
    assert first["metrics"]["loss"]["last"] == 1.25

    # The checkout moves on; the rerun must use what was recorded, not this.
    (repo / "train.py").write_text(_TRAIN_DIRTY.replace("2.0", "3.0"))
    (repo / "helper.py").unlink()
    status_before = git(repo, "status", "--porcelain")

    result = CliRunner().invoke(
        main, ["runs", "rerun", str(first["id"]), "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    assert f"re-ran as {first['id'] + 1}" in result.stdout
    again = T.get_run(first["id"] + 1, store)
    assert again["tags"] == {"rerun_of": str(first["id"])}
    assert again["params"] == first["params"] == {"lr": 0.5, "scale": 2.0}
    assert again["metrics"]["loss"]["last"] == 1.25
    assert again["git_commit"] == commit  # the worktree was at the same commit

    # The user's checkout and worktree list are as they were.
    assert git(repo, "status", "--porcelain") == status_before
    assert len(git(repo, "worktree", "list").splitlines()) == 1

    # Rewrite history so the recorded commit disappears.
    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    result = CliRunner().invoke(
        main, ["runs", "rerun", str(first["id"]), "--store", str(store)]
    )
    assert result.exit_code == 1
    assert "no longer in the repository" in result.output
    assert "nothing was run" in result.output
    assert len(T.list_runs(store)) == 2


def _recorded_run(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    store = tmp_path / "store.db"
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(_TRAIN_COMMITTED)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text(_TRAIN_COMMITTED.replace("1.0", "4.0"))
    env = {**os.environ, "STOKER_STORE": str(store)}
    subprocess.run(
        [sys.executable, "train.py", "0.5"], cwd=repo, env=env, check=True, timeout=60
    )
    (run,) = T.list_runs(store)
    return repo, store, run["id"]


def _set_diff(store, run_id, diff):
    conn = sqlite3.connect(store)
    conn.execute("UPDATE runs SET git_diff = ? WHERE id = ?", (diff, run_id))
    conn.commit()
    conn.close()


@pytest.mark.timeout(120)
def test_rerun_refuses_a_diff_that_does_not_apply_or_was_not_recorded(tmp_path):
    repo, store, run_id = _recorded_run(tmp_path)
    _set_diff(store, run_id, b"diff --git a/train.py b/train.py\n@@ garbage @@\n")
    result = CliRunner().invoke(
        main, ["runs", "rerun", str(run_id), "--store", str(store)]
    )
    assert result.exit_code == 1 and "recorded diff failed" in result.output
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # cleaned up

    _set_diff(store, run_id, None)  # as when the changes were over the size limit
    result = CliRunner().invoke(
        main, ["runs", "rerun", str(run_id), "--store", str(store)]
    )
    assert result.exit_code == 1
    assert "uncommitted changes that were not recorded" in result.output
    assert len(T.list_runs(store)) == 1


def test_capture_records_untracked_files_and_refuses_oversized_ones(
    tmp_path, monkeypatch
):
    from stoker.track import _capture

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.py").write_text("A = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "a.py").write_text("A = 2\n")
    (repo / "new.py").write_text("B = 3\n")
    (repo / "ignored.log").write_text("noise\n")
    (repo / ".gitignore").write_text("*.log\n")

    state = _capture.git_state(str(repo))
    assert state["git_dirty"] == 1 and state["git_note"] is None
    diff = state["git_diff"].decode()
    assert "+A = 2" in diff and "+B = 3" in diff and "noise" not in diff

    (repo / "big.bin").write_bytes(b"\0" * 5000)
    monkeypatch.setattr(_capture, "MAX_DIFF_BYTES", 4000)
    state = _capture.git_state(str(repo))
    assert state["git_diff"] is None and state["git_dirty"] == 1
    assert "big.bin" in state["git_note"]

    monkeypatch.setattr(_capture, "MAX_UNTRACKED_FILES", 1)
    monkeypatch.setattr(_capture, "MAX_DIFF_BYTES", 10_000_000)
    state = _capture.git_state(str(repo))
    assert "only the first 1" in state["git_note"]
