"""``stoker ui --export``: a static folder that works without a server or network."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("starlette")
from click.testing import CliRunner

from stoker.cli import main
from stoker.ui import export_site
from tests.ui_stores import demo_store


def test_export_writes_a_self_contained_site(tmp_path):
    path = tmp_path / "store.db"
    ids = demo_store(path)
    chosen = [ids["threads-1"], ids["threads-2"], ids["xss"]]
    index = export_site(tmp_path / "site", chosen, path)
    site = tmp_path / "site"
    names = {p.name for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "compare.html", "bench.html", "uPlot.LICENSE"} <= names
    assert {f"run-{i}.html" for i in chosen} <= names
    assert f"run-{ids['threads-4']}.html" not in names
    html = index.read_text()
    assert html.count("<tr data-run=") == 3
    assert 'href="run-1.html"' in html and "/runs/" not in html
    assert "<form" not in (site / f"run-{chosen[0]}.html").read_text()
    for page in site.glob("*.html"):
        text = page.read_text()
        # Nothing is fetched from elsewhere: every src and href stays in the folder.
        for ref in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert not re.match(r"^(https?:)?//", ref), (page.name, ref)
        assert "<script>alert" not in text


def test_export_cli(tmp_path):
    path = tmp_path / "store.db"
    demo_store(path)
    out = tmp_path / "report"
    r = CliRunner().invoke(
        main, ["ui", "--store", str(path), "--export", str(out), "--runs", "1,2"]
    )
    assert r.exit_code == 0, r.output
    assert "index.html" in r.output and (out / "run-2.html").exists()
    bad = CliRunner().invoke(
        main, ["ui", "--store", str(path), "--export", str(out), "--runs", "a,b"]
    )
    assert bad.exit_code != 0 and "run ids separated by commas" in bad.output
    missing = CliRunner().invoke(
        main, ["ui", "--store", str(path), "--export", str(out), "--runs", "99"]
    )
    assert missing.exit_code == 1 and "no run 99" in missing.output
    alone = CliRunner().invoke(main, ["ui", "--store", str(path), "--runs", "1"])
    assert alone.exit_code != 0 and "--runs goes with --export" in alone.output
