"""The dashboard in headless Chromium: runs, a run's charts, compare, bench, XSS."""

from __future__ import annotations

import pytest

from stoker.ui import UIOptions
from tests.browser.conftest import drawn, shot
from tests.ui_stores import XSS

pytestmark = pytest.mark.timeout(90)


def test_runs_run_compare_and_scaling(page, store, serve):
    path, ids = store
    url = serve(UIOptions(store=path, port=0))
    page.goto(url)
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == len(ids)
    shot(page, "runs")

    page.click(f"tr[data-run='{ids['threads-2']}'] td.name a")
    page.wait_for_selector("#metric-charts .chart canvas")
    # loss, and epoch_time_s: one point per run, drawn as a marker
    assert drawn(page, "#metric-charts") == 2
    assert drawn(page, "#loader-panels") == 3  # throughput, produce/wait, depth
    assert drawn(page, "#system-charts") == 1
    assert "input-bound" in page.inner_text("#loader-panels")
    shot(page, "run")

    page.goto(url)
    for key in ("threads-1", "threads-2", "threads-4", "processes-1", "processes-4"):
        page.check(f"tr[data-run='{ids[key]}'] input[name=ids]")
    page.click("#compare-button")
    page.wait_for_selector("#scaling-chart canvas")
    assert page.locator("#param-table tr.differs th").all_inner_texts() == [
        "mode",
        "workers",
    ]
    assert page.input_value("#scale-x") == "workers"
    assert page.input_value("#scale-group") == "mode"
    legend = page.inner_text("#scaling-chart")
    assert "threads" in legend and "processes" in legend and "ideal" in legend
    assert drawn(page, "#scaling-chart") == 1
    page.select_option("#scale-y", "epoch_time_s")  # the write-up's chart
    assert "loader epoch time (s) against workers" in page.inner_text("#scaling-chart")
    assert drawn(page, "#scaling-chart") == 1
    assert drawn(page, "#compare-charts") == 2
    shot(page, "compare")

    page.goto(url + "bench")
    page.wait_for_selector(".bench-chart canvas")
    assert drawn(page, ".bench-chart") == 1
    shot(page, "bench")


def test_xss_payloads_stay_text_everywhere(page, store, serve):
    path, ids = store
    url = serve(UIOptions(store=path, port=0))
    for target in ("", f"runs/{ids['xss']}", f"compare?ids={ids['xss']}&ids=1"):
        page.goto(url + target)
        page.wait_for_load_state("load")
        # The payload is on screen as text, and no element came from it.
        assert XSS in page.inner_text("body")
        assert page.locator("img[src=x]").count() == 0
        assert page.evaluate("typeof window.alert_called") == "undefined"
    page.goto(url + f"runs/{ids['xss']}")
    page.wait_for_selector("#metric-charts canvas")
    assert XSS in page.inner_text("#metric-charts")  # chart title and legend
    assert page.inner_text("#note") == XSS
    shot(page, "xss")


def test_exported_site_draws_without_a_server(page, store, tmp_path):
    from stoker.ui import export_site

    path, ids = store
    index = export_site(tmp_path / "site", [ids["threads-1"], ids["threads-4"]], path)
    page.goto(index.as_uri())
    page.click(f"tr[data-run='{ids['threads-4']}'] td.name a")
    page.wait_for_selector("#metric-charts canvas")
    assert drawn(page, "#metric-charts") == 2 and drawn(page, "#loader-panels") == 3
    page.goto((tmp_path / "site" / "compare.html").as_uri())
    page.wait_for_selector("#scaling-chart canvas")
    assert drawn(page, "#scaling-chart") == 1
    shot(page, "export-compare")
