"""The team store under faults: racing migrations, many writers, a server that goes
away, one never reached, a wrong password, a SIGKILLed run; and no password recorded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import stoker.track.api as T
from stoker import StoreError
from stoker.track import _migrations as mig
from stoker.track._store import Store
from stoker.track._sync import sync_spools
from tests import pg

pytestmark = pytest.mark.timeout(180)


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _points(url: str, run_id: int, key: str = "x") -> list[tuple[int, float]]:
    with Store.open(url) as st:
        return [(p["step"], p["value"]) for p in st.points(run_id) if p["key"] == key]


def test_16_processes_migrating_an_empty_database_at_once(pg_url):
    start_at = time.time() + 1.5  # all of them connect, then open at this moment
    code = """
        import sys, time
        from stoker.track._store import Store
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        Store.open(sys.argv[1], create=True).close()
    """
    procs = [_python(code, pg_url, str(start_at)) for _ in range(16)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Store.open(pg_url) as st:
        assert st._db.scalar("SELECT version FROM stoker_schema") == mig.LATEST
        assert st._db.scalar("SELECT count(*) FROM stoker_schema") == 1


def test_8_writers_of_10000_points_each(pg_url):
    code = """
        import sys
        import stoker.track.api as T
        with T.track(f"w{sys.argv[2]}", store=sys.argv[1], capture=False,
                     sample=False) as run:
            for i in range(10_000):
                run.log(step=i, x=float(i))
        print(run.id)
    """
    procs = [_python(code, pg_url, str(i)) for i in range(8)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=150)
        assert p.returncode == 0, err
        ids.append(int(out))
    for run_id in ids:
        assert _points(pg_url, run_id) == [(i, float(i)) for i in range(10_000)]
    assert {r["status"] for r in T.list_runs(pg_url)} == {"finished"}


def test_the_server_stopped_mid_run_and_restarted_loses_nothing(
    pg_server, pg_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("STOKER_SPOOL", str(tmp_path / "spool"))
    with T.track("outage", store=pg_url, capture=False, sample=False) as run:
        for i in range(100):
            run.log(step=i, x=float(i))
        run.flush()
        pg_server.stop()
        try:
            t0 = time.perf_counter()
            for i in range(100, 300):
                run.log(step=i, x=float(i))
            assert time.perf_counter() - t0 < 0.5  # training never waits
            deadline = time.monotonic() + 10
            while run._writer.spool_path is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert run._writer.spool_path is not None, "the writer did not spool"
        finally:
            pg_server.start()
        for i in range(300, 400):
            run.log(step=i, x=float(i))
    assert run._writer.spooled_to is None  # re-sent when the server answered
    assert _points(pg_url, run.id) == [(i, float(i)) for i in range(400)]
    assert T.get_run(run.id, pg_url)["status"] == "finished"
    assert not list((tmp_path / "spool").glob("*.db"))


def test_a_server_unreachable_from_the_start_spools_then_syncs(
    pg_server, pg_url, tmp_path, monkeypatch
):
    spool = tmp_path / "spool"
    monkeypatch.setenv("STOKER_SPOOL", str(spool))
    pg_server.stop()
    try:
        with T.track("offline", {"lr": 0.5}, pg_url, capture=False) as run:
            for i in range(50):
                run.log(step=i, x=float(i))
        assert run.id is None and run.status == "finished"
        assert run._writer.spooled_to is not None
    finally:
        pg_server.start()
    results = sync_spools(pg_url, spool=spool)
    assert [r["status"] for r in results] == ["sent"]
    run_id = results[0]["run_id"]
    assert _points(pg_url, run_id) == [(i, float(i)) for i in range(50)]
    got = T.get_run(run_id, pg_url)
    assert got["status"] == "finished" and got["params"] == {"lr": 0.5}
    assert sync_spools(pg_url, spool=spool) == []  # sent once: the spool is gone


def test_a_wrong_password_is_explained_and_the_run_spools(
    pg_server, pg_url, tmp_path, monkeypatch, caplog
):
    spool = tmp_path / "spool"
    monkeypatch.setenv("STOKER_SPOOL", str(spool))
    bad = pg_url.replace(pg.PASSWORD, "wrong-pw-123")
    with caplog.at_level(logging.WARNING, logger="stoker"):
        with T.track("badpw", store=bad, capture=False, sample=False) as run:
            run.log(step=0, x=1.0)
    text = caplog.text
    assert "password authentication failed" in text
    assert "check the user and password" in text and "runs sync" in text
    assert "wrong-pw-123" not in text and pg.PASSWORD not in text
    assert str(run.store).count("***") == 1
    with pytest.raises(StoreError, match="password authentication failed") as e:
        T.list_runs(bad)
    assert "wrong-pw-123" not in str(e.value)
    (path,) = spool.glob("*.db")
    assert b"wrong-pw-123" not in path.read_bytes()  # a spool holds no password
    (result,) = sync_spools(pg_url, spool=spool)
    assert _points(pg_url, result["run_id"]) == [(0, 1.0)]


def test_a_sigkilled_run_is_marked_killed(pg_url):
    code = """
        import sys, time
        import stoker.track.api as T
        run = T.track("doomed", store=sys.argv[1], capture=False, sample=False)
        run.start()
        run.log(step=0, x=1.0)
        run.flush()
        print(run.id, flush=True)
        time.sleep(60)
    """
    proc = _python(code, pg_url)
    run_id = int(proc.stdout.readline())
    assert T.get_run(run_id, pg_url)["status"] == "running"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert T.get_run(run_id, pg_url)["status"] == "killed"
    with Store.open(pg_url) as st:  # recorded in the store, not only in the answer
        assert st.runs(ids=[run_id])[0]["status"] == "killed"


def test_no_password_is_recorded_in_the_run(pg_url):
    code = """
        import sys
        import stoker.track.api as T
        with T.track("secret", store=sys.argv[1], sample=False) as run:
            raise SystemExit(0)
    """
    proc = _python(code, pg_url, "--store", pg_url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (row,) = T.list_runs(pg_url)
    with Store.open(pg_url) as st:
        everything = repr(st.runs(ids=[row["id"]]))
    assert pg.PASSWORD not in everything
    assert "postgresql://stoker:***@" in everything  # the command, masked
    assert pg.PASSWORD not in out + err


def test_an_idle_spooling_run_reaches_the_server_on_its_own(
    pg_server, pg_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("STOKER_SPOOL", str(tmp_path / "spool"))
    pg_server.stop()
    try:
        run = T.track("late", store=pg_url, capture=False, sample=False).start()
        run.log(step=0, x=1.0)
        run.flush()
        assert run.id is None and run._writer.spool_path is not None
    finally:
        pg_server.start()
    try:
        deadline = time.monotonic() + 20  # the writer retries every 2 s
        while run.id is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.id is not None, "the writer did not reach the server again"
        assert _points(pg_url, run.id) == [(0, 1.0)]
        assert T.get_run(run.id, pg_url)["status"] == "running"
    finally:
        run.end()
    assert T.get_run(run.id, pg_url)["status"] == "finished"
    assert not list((tmp_path / "spool").glob("*.db"))
