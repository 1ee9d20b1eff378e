"""The governor on a fake clock and a fake feed: what it applies, and when."""

from __future__ import annotations

import pytest

from stoker._engine.govern import Governor
from stoker._engine.run import Result
from stoker._engine.stats import LoaderStats
from stoker._errors import ConfigError
from stoker._options import LoaderOptions


class Feed:
    """Records resizes; can always cross to processes."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.mode = "thread"

    def resize(self, workers: int, budget: int) -> None:
        self.sizes.append((workers, budget))


def _setup(**options):
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731
    opts = LoaderOptions(**options)
    stats = LoaderStats(opts.workers, opts.mode, clock=clock)
    feed = Feed()
    gov = Governor(opts, stats, feed, "loader-t", clock=clock)
    return now, stats, feed, gov


def _batch(gov, now, *, wait, produce, step, nbytes=1000):
    now[0] += wait + step
    gov.record(Result(0, None, produce, 0.0, nbytes, None, 0, 0), wait, 1, 0)


def test_fixed_settings_are_cut_to_the_memory_budget_once():
    now, stats, feed, gov = _setup(workers=4, max_queue_size=10, max_memory=10_000)
    stats.epoch_started()
    for _ in range(20):
        _batch(gov, now, wait=0.0, produce=0.001, step=0.001)
    # Only the workers' 4 until the first batch shows its size; then 10 batches of
    # 1000 bytes fit: 4 workers and a queue of 6.
    assert feed.sizes == [(4, 4), (4, 10)]
    (cut,) = stats.summary()["tuning"]
    assert (cut["setting"], cut["from"], cut["to"]) == ("max_queue_size", 10, 6)


def test_the_queue_opens_once_the_first_batch_shows_it_fits():
    now, stats, feed, gov = _setup(workers=2, max_queue_size=10, max_memory=10**9)
    stats.epoch_started()
    assert feed.sizes == [(2, 2)]  # the size is not known yet
    for _ in range(5):
        _batch(gov, now, wait=0.0, produce=0.001, step=0.001)
    assert feed.sizes == [(2, 2), (2, 12)]
    assert stats.summary()["tuning"] == []  # not a decision: the settings hold


def test_batches_without_arrays_open_the_queue_too():
    now, stats, feed, gov = _setup(workers=2, max_queue_size=10, max_memory=1000)
    stats.epoch_started()
    _batch(gov, now, wait=0.0, produce=0.001, step=0.001, nbytes=0)
    assert feed.sizes == [(2, 2), (2, 12)]


def test_under_a_binding_budget_an_auto_queue_makes_room_for_workers():
    # 50 ms batches behind a 1 ms step want many workers; 8 batches fit. The
    # queue gives up its places down to MIN_QUEUE instead of holding 2 workers.
    now, stats, feed, gov = _setup(workers="auto", max_queue_size="auto",
                                   max_memory=8000)  # fmt: skip
    stats.epoch_started()
    for _ in range(200):  # the loop waits for what the workers do not cover
        workers = feed.sizes[-1][0]
        _batch(gov, now, wait=max(0.0, 0.05 / workers - 0.001), produce=0.05,
               step=0.001)  # fmt: skip
    workers, budget = feed.sizes[-1]
    assert workers >= 6 and budget <= 8, feed.sizes


def test_one_batch_over_the_budget_raises():
    now, stats, _, gov = _setup(workers=1, max_memory=500)
    stats.epoch_started()
    with pytest.raises(ConfigError, match="raise max_memory"):
        _batch(gov, now, wait=0.0, produce=0.001, step=0.001)


def test_auto_grows_on_waiting_windows_and_reports_why():
    now, stats, feed, gov = _setup(workers="auto")
    stats.epoch_started()
    for _ in range(40):  # 50 ms batches on 2 workers, a 1 ms step: 25 ms waits
        _batch(gov, now, wait=0.024, produce=0.05, step=0.001)
    assert feed.sizes[:2] == [(2, 2), (2, 12)]  # the queue opens at batch 1
    assert feed.sizes[2][0] > 2
    d = stats.summary()["tuning"][0]
    assert d["setting"] == "workers" and "waited" in d["why"]
    assert stats.summary()["workers"] == feed.sizes[-1][0]


def test_time_between_epochs_is_not_the_training_step():
    now, stats, _, gov = _setup(workers="auto")
    for _ in range(3):
        stats.epoch_started()
        for _ in range(4):  # short epochs: a window spans the pause between them
            _batch(gov, now, wait=0.02, produce=0.05, step=0.005)
        stats.epoch_ended()
        now[0] += 20.0  # a long validation pass
    # Within the epochs the loop waited 80% of the time: grow. Counted on the wall
    # clock, the pause would make it 1% and the workers look idle.
    first = stats.summary()["tuning"][0]
    assert first["setting"] == "workers" and first["to"] > first["from"], first


def test_fixed_settings_are_checked_at_powers_of_two():
    now, stats, _, gov = _setup(workers=2)
    stats.epoch_started()
    checks = []
    gov._warn = lambda: checks.append(stats.batches)
    for _ in range(100):
        _batch(gov, now, wait=0.0, produce=0.001, step=0.001)
    assert checks == [1, 2, 4, 8, 16, 32, 64]


def test_the_auto_queue_grows_for_jitter_and_does_not_breathe_with_the_step():
    now, stats, _, gov = _setup(workers=8, max_queue_size="auto")
    stats.epoch_started()
    # Batches of 10 ms, one in five 100 ms, behind a 1 ms step: the queue grows.
    for k in range(200):
        _batch(gov, now, wait=0.0, produce=0.1 if k % 5 == 0 else 0.01, step=0.001)
    grown = gov.queue
    assert grown > 10
    # The machine gets busy and the measured step with it: the queue stays.
    for k in range(400):
        _batch(gov, now, wait=0.0, produce=0.1 if k % 5 == 0 else 0.01, step=0.04)
    assert gov.queue == grown
    assert [d["setting"] for d in stats.summary()["tuning"]] == ["max_queue_size"]
