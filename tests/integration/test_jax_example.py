"""examples/jax_train.py runs, with small settings, and trains with both feeds."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("sklearn")

from tests.integration.test_torch_example import accuracies, run_example

pytestmark = pytest.mark.timeout(120)


def test_jax_example_trains_with_a_plain_loop_then_stoker():
    out = run_example("jax_train.py")
    assert len(re.findall(r"^stoker +epoch \d: .*10 steps", out, re.M)) == 2
    acc = accuracies(out)
    assert set(acc) == {"plain loop", "stoker"}
    assert all(a > 0.3 for a in acc.values()), out
    assert "x the plain loop's time" in out
