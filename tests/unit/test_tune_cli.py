"""`stoker tune`: the library call and the command (invoked as a click command)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

import stoker
import stoker.tune
from stoker.cli.tune import tune as tune_command

pytestmark = pytest.mark.timeout(60)

_USER_MODULE = '''
import time
import numpy as np

class Slow:
    def __len__(self):
        return 40
    def __getitem__(self, i):
        time.sleep(0.01)
        return np.full(8, i)

def make():
    """A slow reader."""
    return Slow()
'''


def test_exports_are_sorted():
    assert stoker.tune.__all__ == sorted(stoker.tune.__all__)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "tune_user_src.py").write_text(_USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "tune_user_src:make"
    sys.modules.pop("tune_user_src", None)


def test_tune_reports_settings_that_a_loader_takes(user_module):
    report = stoker.tune.tune(user_module, seconds=0.5, step=0.001)
    s = report["settings"]
    assert s["workers"] > 2  # 10 ms reads against a 1 ms step: threads overlap them
    assert s["use_multiprocessing"] is False and report["mode"] == "thread"
    assert report["epochs"] >= 2 and report["tuning"]
    with stoker.Loader(sources_of(user_module), **s) as loader:  # usable as printed
        assert len(list(loader)) == 40


def sources_of(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(__import__(module), attr)()


def test_the_command_prints_the_loader_line_and_json(user_module):
    runner = CliRunner()
    out = runner.invoke(tune_command, [user_module, "--seconds", "0.3"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("stoker.Loader(source, workers=")
    assert "verdict:" in out.output
    out = runner.invoke(tune_command, [user_module, "--seconds", "0.3", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert set(doc["settings"]) == {"workers", "use_multiprocessing", "max_queue_size"}


def test_a_bad_spec_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(
        tune_command, ["no_such_module_xyz:make", "--seconds", "1"]
    )
    assert out.exit_code != 0 and "cannot import module" in out.output
    with pytest.raises(stoker.ConfigError, match="seconds > 0"):
        stoker.tune.tune("latency", seconds=0)
