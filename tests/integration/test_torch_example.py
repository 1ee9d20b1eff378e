"""examples/torch_train.py runs, with small settings, and trains with both feeds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--epochs", "2", "--limit", "320", "--workers", "2", "--latency", "0"]


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", f"examples/{name}", *SMALL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def accuracies(out: str) -> dict[str, float]:
    found = re.findall(r"^(.+?)\s+total [\d.]+ s, test accuracy ([\d.]+)$", out, re.M)
    return {name.strip(): float(acc) for name, acc in found}


def test_torch_example_trains_with_dataloader_then_stoker():
    out = run_example("torch_train.py")
    assert len(re.findall(r"^DataLoader epoch \d", out, re.M)) == 2
    assert len(re.findall(r"^stoker +epoch \d: .*10 steps", out, re.M)) == 2
    acc = accuracies(out)
    assert set(acc) == {"DataLoader", "stoker"}
    assert all(a > 0.3 for a in acc.values()), out  # chance is 0.1
    assert "x the DataLoader's time" in out
