"""docs/cli.md is the CLI's own --help output: regenerate it with `make cli-docs`."""

from __future__ import annotations

from pathlib import Path

from stoker.cli._reference import reference

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_cli_reference_is_current():
    assert PAGE.read_text() == reference(), (
        "docs/cli.md is out of date: run `make cli-docs` and commit it"
    )


def test_every_command_is_in_the_reference():
    page = PAGE.read_text()
    for name in ("bench", "demo", "runs", "runs show", "sweep", "ui"):
        assert f"## `stoker {name}`" in page
