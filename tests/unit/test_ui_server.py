"""The dashboard's server through Starlette's TestClient: pages, API, security."""

from __future__ import annotations

import sqlite3

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import stoker.track.api as T
from stoker.ui import UIOptions, create_app
from tests.ui_stores import XSS, demo_store, many_runs

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store.db"
    return path, demo_store(path)


def client(path, **kw) -> TestClient:
    return TestClient(create_app(UIOptions(store=path, **kw)), base_url=BASE)


def test_every_page_and_its_json(store):
    path, ids = store
    with client(path) as c:
        runs = c.get("/")
        assert runs.status_code == 200
        assert all(f'data-run="{i}"' in runs.text for i in ids.values())
        assert c.get(f"/runs/{ids['threads-1']}").status_code == 200
        two = f"ids={ids['threads-1']}&ids={ids['threads-4']}"
        assert "differs" in c.get(f"/compare?{two}").text
        assert "bench-sleep" in c.get("/bench").text
        api = c.get("/api/runs?per=2").json()
        assert api["total"] == len(ids) and len(api["runs"]) == 2
        one = c.get(f"/api/runs/{ids['threads-1']}").json()
        assert one["params"] == {"lr": 0.1, "mode": "threads", "workers": 1}
        charts = c.get(f"/api/runs/{ids['threads-1']}/charts").json()
        assert charts["metrics"]["loss"]["count"] == 100
        assert charts["loaders"][0]["summary"]["verdict"] == "input-bound"
        cmp = c.get(f"/api/compare?{two}").json()
        assert cmp["differing"] == ["workers"]
        # threads-1 ran 40 s, threads-4 10 s: 3 epochs in 3/4 of that time.
        assert [r["epoch_time_s"] for r in cmp["runs"]] == [10.0, 2.5]
        assert [r["throughput_bps"] for r in cmp["runs"]] == [7.5, 30.0]


def test_bad_requests_get_a_page_that_says_what_to_do(store):
    path, _ = store
    with client(path) as c:
        for url, text in (
            ("/?page=abc", "whole numbers"),
            ("/?sort=evil", "use one of"),
            ("/?status=zombie", "use some of"),
            ("/?tag=novalue", "key=value"),
            ("/compare?ids=1", "2 to 50"),
            ("/compare?ids=x", "run numbers"),
        ):
            r = c.get(url)
            assert r.status_code == 400 and text in r.text, url
        r = c.get("/runs/999")
        assert r.status_code == 404 and "no run 999" in r.text
        assert c.get("/api/runs/999").json()["error"].startswith("no run 999")


def test_filters_sort_and_pages(tmp_path):
    path = tmp_path / "many.db"
    many_runs(path, 120)
    with client(path) as c:
        first = c.get("/api/runs").json()
        assert (first["total"], first["pages"], len(first["runs"])) == (120, 3, 50)
        assert first["runs"][0]["name"] == "run-119"
        last = c.get("/api/runs?page=3").json()
        assert len(last["runs"]) == 20 and last["runs"][-1]["name"] == "run-0"
        page = c.get("/?page=2").text
        assert 'rel="next"' in page and 'rel="prev"' in page
        by_name = c.get("/api/runs?sort=name&desc=0&per=3").json()["runs"]
        assert [r["name"] for r in by_name] == ["run-0", "run-1", "run-10"]
        hits = c.get("/api/runs?q=RUN-11").json()
        assert hits["total"] == 11  # run-11, run-110..119
        assert c.get("/api/runs?param=workers=3").json()["total"] == 15
        assert c.get("/api/runs?param=mode=threads").json()["total"] == 120
        assert c.get("/api/runs?status=failed").json()["total"] == 0
        assert first["runs"][0]["metrics"] == {"acc": 1 / 3, "loss": 1 / 3}


def test_user_text_is_escaped_in_html_and_in_script_data(store):
    path, ids = store
    with client(path) as c:
        for url in ("/", f"/runs/{ids['xss']}", f"/compare?ids={ids['xss']}&ids=1"):
            html = c.get(url).text
            assert "<script>alert" not in html and "<img src=x" not in html, url
            assert "&lt;script&gt;alert(" in html, url
            # Data blocks for the charts: '<' is \\u003c, so nothing closes them.
            for block in html.split('type="application/json"')[1:]:
                assert "</script" not in block.split("</script>")[0]


def test_security_headers_and_dns_rebinding(store):
    path, _ = store
    with client(path) as c:
        r = c.get("/")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        evil = c.get("/", headers={"host": "evil.example:8765"})
        assert evil.status_code == 403 and "127.0.0.1 only" in evil.text


def test_no_request_path_reaches_the_filesystem(store):
    path, _ = store
    with client(path) as c:
        assert c.get("/static/app.js").status_code == 200
        for bad in (
            "/static/..%2F_app.py",
            "/static/%2e%2e/_app.py",
            "/static/../../etc/passwd",
            "/static/_app.py",
            "/static/templates",
            "/etc/passwd",
        ):
            assert c.get(bad).status_code == 404, bad


def test_changes_need_post_and_the_token(store):
    path, ids = store
    rid = ids["threads-1"]
    options = UIOptions(store=path)
    with TestClient(create_app(options), base_url=BASE) as c:
        assert c.get(f"/runs/{rid}/note?note=x").status_code in (404, 405)
        r = c.post(f"/runs/{rid}/note", data={"note": "forged"})
        assert r.status_code == 403
        r = c.post(f"/runs/{rid}/note", data={"note": "x", "token": "y" * 32})
        assert r.status_code == 403
        assert T.run_detail(rid, path)["note"] == ""
        before = T.get_run(rid, path)["heartbeat_at"]
        ok = c.post(
            f"/runs/{rid}/note",
            data={"note": "4 workers: input-bound", "token": options.token},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and ok.headers["location"] == f"/runs/{rid}"
        assert T.run_detail(rid, path)["note"] == "4 workers: input-bound"
        assert T.get_run(rid, path)["heartbeat_at"] == before  # not a heartbeat
        tag = {"key": "good", "value": "yes", "token": options.token}
        c.post(f"/runs/{rid}/tags", data=tag)
        assert T.run_detail(rid, path)["tags"] == {"good": "yes"}
        c.post(f"/runs/{rid}/tags", data={**tag, "value": ""})
        assert T.run_detail(rid, path)["tags"] == {}
        header = {"x-stoker-token": options.token}
        assert c.post(f"/runs/{rid}/delete", headers=header).status_code == 200
        assert rid not in {r["id"] for r in T.list_runs(path)}


def test_rerun_button_only_with_allow_rerun(store):
    path, ids = store
    rid = ids["threads-1"]
    options = UIOptions(store=path)
    with TestClient(create_app(options), base_url=BASE) as c:
        assert "rerun-button" not in c.get(f"/runs/{rid}").text
        r = c.post(f"/runs/{rid}/rerun", data={"token": options.token})
        assert r.status_code == 403 and "--allow-rerun" in r.text
    with client(path, allow_rerun=True) as c:
        assert "rerun-button" in c.get(f"/runs/{rid}").text


def test_a_broken_or_foreign_store_gives_a_page_and_the_server_stays_up(tmp_path):
    path = tmp_path / "store.db"
    with client(path) as c:
        r = c.get("/")
        assert r.status_code == 503 and "no stoker store" in r.text
        path.write_bytes(b"this is not a database at all" * 100)
        r = c.get("/")
        assert r.status_code == 503 and "not a stoker store" in r.text
        path.unlink()
        sqlite3.connect(path).execute(
            "CREATE TABLE songs (title TEXT)"
        ).connection.close()
        r = c.get("/runs/1")
        assert r.status_code == 503 and "not a stoker store" in r.text
        path.unlink()
        path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)  # damaged
        r = c.get("/")
        assert r.status_code == 503 and "store" in r.text
        path.unlink()
        demo_store(path)  # fixed: the same server now serves it
        assert c.get("/").status_code == 200


def test_token_required_off_loopback(store):
    path, _ = store
    options = UIOptions(store=path, host="0.0.0.0")
    with TestClient(create_app(options), base_url="http://10.1.2.3:8765") as c:
        assert c.get("/").status_code == 403
        assert c.get("/api/runs").status_code == 403
        r = c.get(f"/?token={options.token}&page=1", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/?page=1"
        assert "httponly" in r.headers["set-cookie"].lower()
        assert c.get("/").status_code == 200  # the cookie
    with TestClient(create_app(options), base_url="http://10.1.2.3:8765") as c:
        c.cookies.set("stoker_token", "x" * 32)
        assert c.get("/api/runs").status_code == 403


def test_options_are_validated():
    with pytest.raises(ValueError, match="65535"):
        UIOptions(port=70000)
    with pytest.raises(ValueError, match="shorter than 16"):
        UIOptions(token="short")
    assert UIOptions().local and not UIOptions(host="0.0.0.0").local
    assert UIOptions().token != UIOptions().token
    assert XSS  # the payload used across these tests is non-empty


def test_the_runs_table_shows_the_params_that_differ_first(tmp_path):
    from stoker.track._store import Store
    from tests.ui_stores import add_run

    path = tmp_path / "s.db"
    with Store.open(path, create=True) as st:
        for w in (1, 2):
            add_run(st, f"w{w}", params={"a": 0, "b": 0, "c": 0, "d": 0, "z": w})
    rows = client(path).get("/").text
    assert "z=1" in rows and "z=2" in rows and "d=0" not in rows
