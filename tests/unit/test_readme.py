"""The README's example runs as written: threads, and processes in a script with no
main guard (a fresh interpreter, the example as its main module)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATS_LINE = re.compile(
    r"<LoaderStats epoch (\d): 100 batches, [\d.]+ batches/s, waited \d+%; total: "
    r"(\d+) batches in (\d) epochs, waited \d+%: (compute|input)-bound>"
)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)[0]


def run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` as the main script of a fresh interpreter, with only stoker added."""
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("processes", [False, True])
def test_the_readme_example_runs_as_written(tmp_path, processes):
    code = readme_example()
    if processes:
        code = code.replace("seed=0)", "seed=0, use_multiprocessing=True)")
        assert "use_multiprocessing=True" in code
    out = run_script(tmp_path, code)
    lines = out.stdout.splitlines()
    found = [STATS_LINE.fullmatch(line) for line in lines]
    assert all(found), lines
    assert [(m[1], m[2], m[3]) for m in found if m] == [
        ("0", "100", "1"),
        ("1", "200", "2"),
    ]


@pytest.mark.timeout(120)
def test_the_readme_auto_example_runs_as_written(tmp_path):
    """The ``workers="auto"`` block, after the first block's imports and source."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert 'workers="auto"' in blocks[1]
    out = run_script(tmp_path, blocks[0].split("loader = stoker.Loader")[0] + blocks[1])
    *stats, tuning = out.stdout.splitlines()
    assert [STATS_LINE.fullmatch(line) is not None for line in stats] == [True] * 3
    assert tuning.startswith("[{'at_batch': ") and "'setting': 'workers'" in tuning
