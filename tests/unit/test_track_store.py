"""The store: where it lives, migrations, and refusing what is not a stoker store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

import stoker.track.api as T
from stoker import StoreError
from stoker.track import _migrations as mig
from stoker.track._store import Store


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    siblings = sorted(p.name for p in path.parent.iterdir())
    return path.read_bytes(), path.stat().st_mtime_ns, siblings


def test_a_missing_store_is_created_and_migrated(tmp_path):
    path = tmp_path / "deep" / "dir" / "store.db"
    with Store.open(path, create=True) as st:
        assert st.path == path
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == mig.LATEST
    assert conn.execute("PRAGMA application_id").fetchone()[0] == mig.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_an_empty_file_migrates(tmp_path):
    path = tmp_path / "store.db"
    path.touch()
    with T.track("first", store=path, capture=False, sample=False) as run:
        run.log(step=0, loss=1.0)
    assert mig.schema_version(sqlite3.connect(path)) == mig.LATEST
    assert T.get_run(run.id, path)["metrics"]["loss"]["last"] == 1.0


def test_an_empty_sqlite_database_migrates(tmp_path):
    path = tmp_path / "store.db"
    sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    Store.open(path, create=True).close()
    assert mig.schema_version(sqlite3.connect(path)) == mig.LATEST


def test_migrations_apply_in_order_from_the_stored_version(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    first = (("CREATE TABLE a (x INTEGER)",),)
    assert mig.migrate(conn, first) == 1
    second = (*first, ("ALTER TABLE a ADD COLUMN y TEXT", "CREATE TABLE b (z)"))
    assert mig.migrate(conn, second) == 2
    assert mig.migrate(conn, second) == 2  # idempotent
    cols = [r[1] for r in conn.execute("PRAGMA table_info(a)")]
    assert cols == ["x", "y"]
    assert mig.schema_version(conn) == 2


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    broken = (("CREATE TABLE a (x)", "THIS IS NOT SQL"),)
    with pytest.raises(sqlite3.OperationalError):
        mig.migrate(conn, broken)
    assert mig.schema_version(conn) == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my precious notes\n" * 100)
    before = _snapshot(path)
    with pytest.raises(StoreError, match="not an SQLite file"):
        T.track("x", store=path).start()
    with pytest.raises(StoreError, match="not an SQLite file"):
        T.list_runs(path)
    assert _snapshot(path) == before


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.execute("INSERT INTO customers VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _snapshot(path)
    with pytest.raises(StoreError, match="not a stoker store"):
        T.track("x", store=path).start()
    with pytest.raises(StoreError, match="not a stoker store"):
        T.list_runs(path)
    assert _snapshot(path) == before


def test_a_store_from_a_newer_stoker_is_refused(tmp_path):
    path = tmp_path / "store.db"
    Store.open(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {mig.LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer stoker"):
        Store.open(path, create=True)


def test_a_directory_or_a_foreign_url_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        Store.open(tmp_path, create=True)
    with pytest.raises(StoreError, match="postgresql://user:password@") as e:
        Store.open("mysql://me:hunter2@localhost/runs", create=True)
    assert "hunter2" not in str(e.value)


def test_readers_do_not_create_a_store(tmp_path):
    path = tmp_path / "none.db"
    with pytest.raises(StoreError, match="no stoker store"):
        T.list_runs(path)
    assert not path.exists()


def test_default_path_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.delenv("STOKER_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert T.resolve_path() == tmp_path / ".stoker" / "store.db"
    monkeypatch.setenv("STOKER_STORE", str(tmp_path / "env.db"))
    assert T.resolve_path() == tmp_path / "env.db"
    assert T.resolve_path(tmp_path / "arg.db") == tmp_path / "arg.db"
    with T.track("env", capture=False, sample=False) as run:
        pass
    assert run.store == tmp_path / "env.db"


def _set_read_only(base: Path, path: Path, read_only: bool) -> None:
    if os.geteuid() != 0:
        path.chmod(0o444 if read_only else 0o644)
        base.chmod(0o555 if read_only else 0o755)
        return
    # root ignores permission bits; the immutable attribute stops root too.
    flag = "+i" if read_only else "-i"
    for p in (path, base):
        proc = subprocess.run(
            ["chattr", flag, str(p)], capture_output=True, check=False
        )
        if proc.returncode != 0 and read_only:
            pytest.skip(f"cannot make a file read-only for root here: {proc.stderr!r}")


def test_a_read_only_store_is_refused_for_writing_but_readable(tmp_path):
    base = tmp_path / "ro"
    base.mkdir()
    path = base / "store.db"
    with T.track("kept", store=path, capture=False, sample=False):
        pass
    before = _snapshot(path)
    _set_read_only(base, path, True)
    try:
        with pytest.raises(StoreError, match="read-only"):
            T.track("new", store=path, capture=False, sample=False).start()
        assert [r["name"] for r in T.list_runs(path)] == ["kept"]
        with pytest.raises(StoreError, match="read-only"):
            T.delete_run(1, path)
    finally:
        _set_read_only(base, path, False)
    assert _snapshot(path) == before


@pytest.mark.timeout(60)
def test_threads_racing_to_create_one_store_all_succeed(tmp_path):
    # Before the identity check read in one transaction, about one trial in four
    # saw a half-created store and refused it as foreign.
    for trial in range(20):
        path = tmp_path / f"race{trial}.db"
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def open_it(path=path, errors=errors, barrier=barrier):
            barrier.wait(timeout=10)
            try:
                Store.open(path, create=True).close()
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, (trial, errors)
        assert mig.schema_version(sqlite3.connect(path)) == mig.LATEST


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_v3_keeps_a_v2_stores_trials_and_lets_a_trial_be_killed(
    tmp_path, kind, request, monkeypatch
):
    """issue 17: a trial on a lost Ray node is 'killed'; schema 2 refused that."""
    if kind == "sqlite":
        store = str(tmp_path / "v2.db")
        conn = sqlite3.connect(store, isolation_level=None)
        assert mig.migrate(conn, mig.MIGRATIONS[:2]) == 2
        conn.execute(
            "INSERT INTO sweeps VALUES ('s', 'running', 0, NULL, '[\"x\"]', "
            "'{\"a\": [1, 2]}', '{}')"
        )
        trial = "INSERT INTO sweep_trials (sweep, trial, params, status) VALUES "
        conn.execute(trial + "('s', 'a=1#1', '{\"a\": 1}', 'finished')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(trial + "('s', 'a=2#1', '{\"a\": 2}', 'killed')")
        conn.close()
    else:
        from stoker.track import _postgres

        store = request.getfixturevalue("pg_url")
        # A PostgreSQL store at schema 2, as an older stoker left it.
        with monkeypatch.context() as m:
            m.setattr(mig, "MIGRATIONS", mig.MIGRATIONS[:2])
            m.setattr(mig, "LATEST", 2)
            T.record_sweep("s", command=["x"], grid={"a": [1, 2]}, store=store)
            T.record_trial("s", "a=1#1", {"a": 1}, store, status="finished")
        _postgres._current.clear()
    T.record_trial("s", "a=2#1", {"a": 2}, store, status="killed", error="node lost")
    trials = {t["trial"]: t for t in T.get_sweep("s", store)["trials"]}
    assert trials["a=1#1"]["status"] == "finished"
    assert trials["a=2#1"]["status"] == "killed"
    assert trials["a=2#1"]["error"] == "node lost"
