"""Browser fixtures: a dashboard on 127.0.0.1 at a free port, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/sysdeps``) driven by
pip's Playwright through ``executable_path``: Playwright's own browser download is
not reachable here. Each page the tests visit is screenshotted into
``tests/browser/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("starlette")

from playwright.sync_api import Browser, Page, sync_playwright

from stoker.ui import Server, UIOptions
from tests.ui_stores import demo_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no chromium: run `bash .ci/sysdeps` (apt-get install chromium)",
        allow_module_level=True,
    )


# Per module, not per session: Chromium and Playwright's driver are child processes,
# and later tests check that no child process outlives them.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
    deadline = time.monotonic() + 10
    while _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _children(), f"browser processes left: {_children()}"


def _children() -> list[str]:
    out = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and (
                "chrom" in proc.name() or "node" in proc.name()
            ):
                out.append(proc.name())
    return out


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: the XSS tests must prove the escaping, not lean on the CSP header
    # (a unit test checks that header), and wait_for_function needs eval.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"the page raised or opened a dialog: {errors}"


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    path = tmp_path / "store.db"
    return path, demo_store(path)


class _Sleepy:
    """5 ms per batch and a loop that never pauses: workers='auto' grows the pool."""

    def __len__(self) -> int:
        return 100

    def __getitem__(self, i: int) -> Any:
        import numpy as np

        time.sleep(0.005)
        return np.full(16, i)


@pytest.fixture
def tuned_store(tmp_path: Path) -> tuple[Path, int, list[dict[str, Any]]]:
    """A store with one real run whose loader used workers="auto": (path, run id,
    the loader's tuning decisions)."""
    import stoker
    import stoker.track.api as T

    path = tmp_path / "tuned.db"
    with T.track("autotuned", store=path, capture=False) as run:
        with stoker.Loader(_Sleepy(), workers="auto", max_queue_size="auto") as ld:
            for _ in range(3):
                for _ in ld:
                    pass
            tuning = ld.stats.summary()["tuning"]
    assert tuning, "the controller made no decision: the page would have none"
    return path, run.id, tuning


@pytest.fixture
def serve():
    """serve(options) -> base URL; every server started is stopped afterwards."""
    servers: list[Server] = []

    def start(options: UIOptions) -> str:
        server = Server(options)
        servers.append(server)
        return server.start()

    yield start
    for s in servers:
        s.stop()


def shot(page: Page, name: str) -> Path:
    """Screenshot the whole page into the artefacts folder."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def drawn(page: Page, selector: str) -> int:
    """How many charts under ``selector`` drew data: canvases with coloured pixels.

    Axes, grid and labels are grey or black; only series are drawn in colour, so an
    empty chart (no data, or data all null) counts as not drawn.
    """
    return page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' canvas'))
          .filter(c => {
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let coloured = 0;
            for (let i = 0; i < d.length; i += 4) {
              const hi = Math.max(d[i], d[i + 1], d[i + 2]);
              const lo = Math.min(d[i], d[i + 1], d[i + 2]);
              if (d[i + 3] > 128 && hi - lo > 60) coloured++;
            }
            return coloured > 20;
          }).length""",
        selector,
    )
