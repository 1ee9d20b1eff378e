"""A live run in the browser: it updates by itself, and turns killed when killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import stoker.track.api as T
from stoker.ui import UIOptions
from tests.browser.conftest import shot

pytestmark = pytest.mark.timeout(90)

_CHILD = """
import sys, time
import stoker.track.api as T

with T.track("live", params={"workers": 2}, store=sys.argv[1]) as run:
    for i in range(100_000):
        run.log(step=i, loss=1.0 / (i + 1))
        time.sleep(0.02)
"""


def _wait_for_run(store, proc, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        if store.exists():
            runs = T.list_runs(store)
            if runs and T.get_run(runs[0]["id"], store)["metrics"]:
                return runs[0]["id"]
        time.sleep(0.1)
    raise AssertionError("the child never recorded a point")


def test_live_run_updates_then_turns_killed(page, tmp_path, serve):
    store = tmp_path / "store.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(store)], stderr=subprocess.PIPE, text=True
    )
    try:
        run_id = _wait_for_run(store, proc)
        url = serve(UIOptions(store=store, port=0))
        page.goto(f"{url}runs/{run_id}")
        page.wait_for_selector("#metric-charts canvas")
        assert page.inner_text("#status") == "running"
        first = int(page.evaluate("document.body.dataset.points"))
        # New points reach the screen within 2 s (writer flush + 1 s polling).
        page.wait_for_function(
            f"Number(document.body.dataset.points) > {first}", timeout=2000
        )
        page.wait_for_function(
            "Number(document.body.dataset.updates || 0) >= 2", timeout=3000
        )
        shot(page, "live")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        page.wait_for_function(
            "document.getElementById('status').textContent === 'killed'", timeout=3000
        )
        assert "killed" in page.get_attribute("#status", "class")
        shot(page, "killed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()
