"""The dashboard's Re-run button: the recorded command at its commit, linked back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import stoker.track.api as T
from stoker.ui import UIOptions, create_app

_TRAIN = """
from stoker.track import track
with track("scratch", params={"lr": 0.5}) as run:
    run.log(step=0, loss=1.25)
"""
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _git(repo, *args):
    env = {**os.environ, **_GIT_ENV}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.mark.timeout(120)
def test_rerun_from_the_dashboard_links_back(tmp_path):
    repo, store = tmp_path / "repo", tmp_path / "store.db"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(_TRAIN)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    env = {**os.environ, "STOKER_STORE": str(store)}
    subprocess.run(
        [sys.executable, "train.py"], cwd=repo, env=env, check=True, timeout=60
    )
    (original,) = T.list_runs(store)
    options = UIOptions(store=store, allow_rerun=True)
    app = create_app(options)
    with TestClient(app, base_url="http://127.0.0.1:8765") as c:
        r = c.post(f"/runs/{original['id']}/rerun", data={"token": options.token})
        assert r.status_code == 200 and "Re-run started" in r.text
        app.state.reruns.close()  # waits for the command to finish
        page = c.get(f"/runs/{original['id']}").text
        assert "Re-run exited with code 0" in page
        new = [r for r in T.list_runs(store) if r["id"] != original["id"]]
        assert len(new) == 1 and new[0]["tags"] == {"rerun_of": str(original["id"])}
        assert f'href="/runs/{new[0]["id"]}"' in page  # the original lists it
        again = c.get(f"/runs/{new[0]['id']}").text
        assert f'Re-run of <a href="/runs/{original["id"]}"' in again
