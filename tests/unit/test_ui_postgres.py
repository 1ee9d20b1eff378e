"""The dashboard over the team store: the same pages and JSON from PostgreSQL.

The dashboard reads through ``stoker.track`` only, whose SQL runs on both
databases; this runs the server-level checks against a real PostgreSQL server
(tests/pg.py starts one for the session).
"""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from stoker.ui import UIOptions, create_app
from tests.pg import PASSWORD
from tests.ui_stores import XSS, demo_store, many_runs

BASE = "http://127.0.0.1:8765"
pytestmark = pytest.mark.timeout(120)


def test_pages_and_json_from_postgresql(pg_url):
    ids = demo_store(pg_url)
    with TestClient(create_app(UIOptions(store=pg_url)), base_url=BASE) as c:
        runs = c.get("/")
        assert runs.status_code == 200, runs.text[:500]
        assert all(f'data-run="{i}"' in runs.text for i in ids.values())
        assert PASSWORD not in runs.text  # the URL's password is never shown
        assert c.get(f"/runs/{ids['threads-1']}").status_code == 200
        two = f"ids={ids['threads-1']}&ids={ids['threads-4']}"
        assert "differs" in c.get(f"/compare?{two}").text
        one = c.get(f"/api/runs/{ids['threads-1']}").json()
        assert one["params"] == {"lr": 0.1, "mode": "threads", "workers": 1}
        charts = c.get(f"/api/runs/{ids['threads-1']}/charts").json()
        assert charts["metrics"]["loss"]["count"] == 100
        assert charts["loaders"][0]["summary"]["verdict"] == "input-bound"
        cmp = c.get(f"/api/compare?{two}").json()
        assert cmp["differing"] == ["workers"]
        assert [r["epoch_time_s"] for r in cmp["runs"]] == [10.0, 2.5]


def test_runs_table_filters_and_pages_from_postgresql(pg_url):
    many_runs(pg_url, 120)
    with TestClient(create_app(UIOptions(store=pg_url)), base_url=BASE) as c:
        first = c.get("/api/runs").json()
        assert (first["total"], first["pages"], len(first["runs"])) == (120, 3, 50)
        assert first["runs"][0]["name"] == "run-119"
        last = c.get("/api/runs?page=3").json()
        assert len(last["runs"]) == 20 and last["runs"][-1]["name"] == "run-0"
        assert XSS not in c.get("/").text
