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


def test_tuning_decisions_are_listed_and_marked_on_the_timeline(
    page, tuned_store, serve
):
    path, run_id, tuning = tuned_store
    url = serve(UIOptions(store=path, port=0))
    page.goto(f"{url}runs/{run_id}")
    page.wait_for_selector("#loader-panels table.decisions tbody tr")
    rows = page.locator("#loader-panels table.decisions tbody tr")
    assert rows.count() == len(tuning)
    first = rows.nth(0).inner_text()
    assert tuning[0]["why"] in first
    assert f"{tuning[0]['from']} → {tuning[0]['to']}" in first
    # every loader chart marks every decision on its time axis
    page.wait_for_function(
        "document.querySelectorAll('#loader-panels .chart[data-markers]').length == 3"
    )
    markers = page.eval_on_selector_all(
        "#loader-panels .chart", "els => els.map(e => e.dataset.markers)"
    )
    assert markers == [str(len(tuning))] * 3
    assert drawn(page, "#loader-panels") == 3
    pool = [d["to"] for d in tuning if d["setting"] == "workers"]
    if pool:  # the settings line says where the pool ended
        assert f"workers=auto (now {pool[-1]})" in page.inner_text("#loader-panels")
    shot(page, "run-autotune")


def test_decision_text_stays_text(page, tmp_path, serve):
    import stoker.track.api as T
    from stoker import BatchEvent

    store = tmp_path / "odd.db"
    decision = {"at_batch": 7, "at_s": 0.05, "setting": "workers", "from": 2, "to": 9}
    with T.track("odd", store=store, capture=False) as run:
        run.on_start("loader-1", {"workers": 2, "auto": ["workers"]})
        for i in range(40):
            run.on_batch(BatchEvent("loader-1", 0, i, i, 0.01, 0.02, 2, 8))
        run.on_close("loader-1", {"tuning": [{**decision, "why": XSS}]})
    url = serve(UIOptions(store=store, port=0))
    page.goto(f"{url}runs/{run.id}")
    page.wait_for_selector("#loader-panels table.decisions td.why")
    assert page.inner_text("#loader-panels table.decisions td.why") == XSS
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("typeof window.alert_called") == "undefined"
