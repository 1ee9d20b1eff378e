"""The team store's workflow: push and pull between a laptop's SQLite store and
PostgreSQL (idempotent), `runs sync` from the CLI, data versions compared, and the
CLI against a URL never printing its password."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import stoker
import stoker.track.api as T
from tests import pg

pytestmark = pytest.mark.timeout(120)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stoker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def _quick(name, store, **kw):
    return T.track(name, store=store, capture=False, sample=False, **kw)


def test_push_and_pull_copy_every_record_once(tmp_path, pg_url):
    laptop = tmp_path / "laptop.db"
    with T.track("a", {"lr": 0.1}, laptop, tags={"who": "me"}, sample=False) as run:
        for i in range(20):
            run.log(step=i, loss=1.0 / (i + 1), acc=float("nan") if i == 3 else 0.5)
        with stoker.Loader(list(range(6)), workers=2) as loader:
            for _ in loader:
                pass
    with _quick("b", laptop):
        pass
    proc = _cli("runs", "push", "--store", str(laptop), "--to", pg_url)
    assert proc.returncode == 0, proc.stderr
    assert "2 copied, 0 already there" in proc.stdout
    assert pg.PASSWORD not in proc.stdout + proc.stderr
    again = _cli("runs", "push", "--store", str(laptop), "--to", pg_url)
    assert "0 copied, 2 already there" in again.stdout
    (team_a,) = [r for r in T.list_runs(pg_url) if r["name"] == "a"]
    mine, theirs = T.get_run(run.id, laptop), T.get_run(team_a["id"], pg_url)
    for key in (
        "name",
        "status",
        "params",
        "tags",
        "created_at",
        "ended_at",
        "git_commit",
        "git_dirty",
        "environment",
        "loaders",
    ):
        assert mine[key] == theirs[key], key
    assert mine["metrics"]["loss"] == theirs["metrics"]["loss"]
    assert theirs["metrics"]["acc"]["nan_count"] == 1
    with T.Store.open(laptop) as a, T.Store.open(pg_url) as b:
        assert a.points(run.id)[5] == b.points(team_a["id"])[5]
        assert len(a.loader_batches(run.id)) == len(b.loader_batches(team_a["id"]))
        assert a.git_diff(run.id) == b.git_diff(team_a["id"])

    other = tmp_path / "other.db"
    proc = _cli("runs", "pull", "--from", pg_url, "--store", str(other))
    assert proc.returncode == 0 and "2 copied" in proc.stdout, proc.stderr
    assert sorted(r["name"] for r in T.list_runs(other)) == ["a", "b"]
    assert (
        "0 copied, 2 already there"
        in _cli("runs", "pull", "--from", pg_url, "--store", str(other)).stdout
    )


def test_a_running_run_is_not_copied(tmp_path, pg_url):
    laptop = tmp_path / "laptop.db"
    run = _quick("live", laptop).start()
    try:
        (row,) = T.copy_runs(laptop, pg_url)
        assert row["status"] == "running" and T.list_runs(pg_url) == []
    finally:
        run.end()
    (row,) = T.copy_runs(laptop, pg_url)
    assert row["status"] == "copied"


def test_runs_sync_from_the_cli(tmp_path, pg_server, pg_url):
    spool = tmp_path / "spool"
    env = {"STOKER_SPOOL": str(spool)}
    bad = pg_url.replace(pg.PASSWORD, "nope")
    script = (
        "import stoker.track as T, sys\n"
        "with T.track('s', store=sys.argv[1], capture=False) as r: r.log(x=1.0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, bad],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    assert "runs sync" in proc.stderr and "nope" not in proc.stderr
    out = _cli("runs", "sync", "--store", pg_url, env=env)
    assert out.returncode == 0, out.stderr
    assert "sent 1 writes" in out.stdout or "sent 2 writes" in out.stdout
    assert pg.PASSWORD not in out.stdout
    assert [r["name"] for r in T.list_runs(pg_url)] == ["s"]
    assert "nothing to send" in _cli("runs", "sync", "--store", pg_url, env=env).stdout


def test_compare_shows_runs_that_read_different_data(tmp_path, any_store):
    files = [tmp_path / f"part{i}.bin" for i in range(3)]
    for f in files:
        f.write_bytes(b"x" * 10)

    class Files:
        def __init__(self, files):
            self.files = files

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            return np.frombuffer(self.files[i].read_bytes(), dtype=np.uint8)

    def one(version):
        with _quick("d", any_store, data_version=version) as run:
            with stoker.Loader(Files(files), workers=1) as loader:
                for _ in loader:
                    pass
        return run.id

    a, b = one("v1"), one("v1")
    assert T.compare_runs([a, b], any_store)["differing_data"] is False
    files[1].write_bytes(b"y" * 11)  # the data changed under the same version
    c = one("v1")
    result = T.compare_runs([a, c], any_store)
    assert result["differing_data"] is True
    assert result["data"][0]["fingerprints"] != result["data"][1]["fingerprints"]
    settings = T.get_run(c, any_store)["loaders"][0]["settings"]
    assert settings["source_file_count"] == 3 and "source_files" not in settings
    d = one("v2")
    assert T.compare_runs([c, d], any_store)["data"][1]["data_version"] == "v2"
    out = _cli("runs", "compare", str(a), str(c), "--store", str(any_store))
    assert "the runs read different data" in out.stdout, out.stderr


def test_the_cli_against_a_url_masks_its_password(pg_url):
    with _quick("x", pg_url):
        pass
    ok = _cli("runs", "--store", pg_url)
    assert ok.returncode == 0 and " x " in ok.stdout, ok.stderr
    bad = pg_url.replace(pg.PASSWORD, "wrong-pw")
    proc = _cli("runs", "--store", bad)
    assert proc.returncode == 1
    assert "password authentication failed" in proc.stderr
    assert "wrong-pw" not in proc.stderr and "***" in proc.stderr


def test_a_store_from_before_the_team_store_migrates_and_pushes(tmp_path, pg_url):
    import sqlite3

    from stoker.track import _migrations as mig

    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    mig.migrate(conn, mig.MIGRATIONS[:1])  # a store written by the previous stoker
    conn.execute(
        "INSERT INTO runs (name, status, created_at, ended_at, heartbeat_at, host, "
        "pid) VALUES ('legacy', 'finished', 1.0, 2.0, 2.0, 'h', 1)"
    )
    conn.close()
    assert [r["name"] for r in T.list_runs(old)] == ["legacy"]  # readable as it is
    with _quick("new", old):  # a tracking run migrates it
        pass
    assert mig.schema_version(sqlite3.connect(old)) == mig.LATEST
    first = T.copy_runs(old, pg_url)
    assert [r["status"] for r in first] == ["copied", "copied"]
    assert first[0]["uid"].startswith("legacy-")  # derived, so stable
    again = T.copy_runs(old, pg_url)
    assert [r["status"] for r in again] == ["present", "present"]
    assert sorted(r["name"] for r in T.list_runs(pg_url)) == ["legacy", "new"]
