"""stoker.testing.check_source passes good sources and names the bad batch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import stoker
from stoker.testing import SourceCheckFailed, check_source
from tests import sources

pytestmark = pytest.mark.timeout(60)


def test_good_source_passes_and_reports():
    report = check_source(sources.Jittery(n=9), shuffle=True, epochs=2)
    assert report.batches == 9 and report.resumed_at == (1, 4)
    assert "1 thread workers" in str(report)


class GlobalRandom:
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return np.array([np.random.rand()])


class Counter:
    def __init__(self):
        self.calls = itertools.count()

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.array([next(self.calls)])


def test_global_random_on_threads_is_caught():
    with pytest.raises(SourceCheckFailed, match=r"epoch 0, batch 0.*stoker.rng\(\)"):
        check_source(GlobalRandom())


def test_stateful_source_is_caught():
    with pytest.raises(SourceCheckFailed, match="differ at epoch 0"):
        check_source(Counter())


def test_stoker_rng_source_passes_per_sample():
    report = check_source(sources.Samples(n=10), batch_size=3, shuffle=True)
    assert report.batches == 4
    assert isinstance(stoker.rng(), np.random.Generator)
