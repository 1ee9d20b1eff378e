"""examples/jax_train.py runs, with small settings, and trains with both feeds."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.integration.test_torch_example import accuracies, run_example

# find_spec, not importorskip: importing jax here would make JAX warn at every fork
# of the process workers in the rest of the suite (the example runs in a subprocess).
MISSING = [
    m for m in ("jax", "optax", "sklearn") if importlib.util.find_spec(m) is None
]
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING}"),
]


def test_jax_example_trains_with_a_plain_loop_then_stoker():
    out = run_example("jax_train.py")
    assert len(re.findall(r"^stoker +epoch \d: .*10 steps", out, re.M)) == 2
    acc = accuracies(out)
    assert set(acc) == {"plain loop", "stoker"}
    assert all(a > 0.3 for a in acc.values()), out
    assert "x the plain loop's time" in out
