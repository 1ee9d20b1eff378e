"""Loader.from_generator: deterministic interleave, carry-over, exhaustion, resume."""

from __future__ import annotations

import pytest

import stoker

pytestmark = pytest.mark.timeout(30)


def disjoint(w, n):
    return iter(range(w, 10**6, n))


def test_factory_streams_interleave_in_a_fixed_order():
    with stoker.Loader.from_generator(disjoint, steps_per_epoch=9, workers=3) as g:
        assert len(g) == 9
        assert list(g) == list(range(9))
        assert list(g) == list(range(9, 18))


def test_cut_epoch_keeps_produced_items_for_the_next():
    with stoker.Loader.from_generator(
        disjoint, steps_per_epoch=6, workers=2, max_queue_size=4
    ) as g:
        it = iter(g)
        first = [next(it), next(it)]
        del it
        rest = list(g)
    assert first + rest[:4] == list(range(6))  # nothing lost, nothing repeated
    assert rest == list(range(2, 8))


def test_single_generator_object_runs_on_one_worker():
    gen = (i * i for i in range(100))
    with stoker.Loader.from_generator(gen, steps_per_epoch=5, workers=8) as g:
        assert g.options.workers == 1
        assert list(g) == [0, 1, 4, 9, 16]


def test_exhausted_generator_says_what_to_do():
    with stoker.Loader.from_generator(iter(range(3)), steps_per_epoch=5) as g:
        with pytest.raises(stoker.StokerError, match="exhausted; pass a factory"):
            list(g)


def test_finite_factory_restarts_a_pass():
    def finite(w, n):
        return iter(range(w, 4, n))

    with stoker.Loader.from_generator(finite, steps_per_epoch=4, workers=2) as g:
        assert list(g) == [0, 1, 2, 3]
        assert list(g) == [0, 1, 2, 3]


def test_generator_error_keeps_type():
    def bad(w, n):
        yield 1
        raise OSError("bucket unreachable")

    with stoker.Loader.from_generator(bad, steps_per_epoch=6, workers=1) as g:
        with pytest.raises(OSError, match="bucket unreachable"):
            list(g)


def test_resume_from_state():
    with stoker.Loader.from_generator(disjoint, steps_per_epoch=7, workers=3) as g:
        list(g)
        it = iter(g)
        for _ in range(3):
            next(it)
        state = g.state_dict()
        del it
    with stoker.Loader.from_generator(disjoint, steps_per_epoch=7, workers=3) as h:
        h.load_state_dict(state)
        assert list(h) == list(range(10, 14))
        assert list(h) == list(range(14, 21))


def test_bad_arguments():
    with pytest.raises(stoker.ConfigError, match="steps_per_epoch"):
        stoker.Loader.from_generator(disjoint, steps_per_epoch=None)  # type: ignore[arg-type]
    with pytest.raises(stoker.ConfigError, match="pass a generator"):
        stoker.Loader.from_generator(42, steps_per_epoch=3)
    single = stoker.Loader.from_generator(iter(range(9)), steps_per_epoch=3)
    with pytest.raises(stoker.ConfigError, match="cannot resume"):
        single.load_state_dict(single.state_dict())
    single.close()
