"""Stats, verdicts, observers and the memory bound."""

from __future__ import annotations

import time

import pytest

import stoker
from tests import sources

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self):
        self.calls = []

    def on_start(self, loader_id, settings):
        self.calls.append(("start", settings))

    def on_batch(self, event):
        self.calls.append(("batch", event))

    def on_epoch_end(self, loader_id, epoch, summary):
        self.calls.append(("epoch_end", epoch))

    def on_close(self, loader_id, summary):
        self.calls.append(("close", summary))


def test_observers_see_everything_and_scoped_ones_attach():
    rec, scoped = Recorder(), Recorder()
    with stoker.observe_all(scoped):
        loader = stoker.Loader(sources.Indexed(n=5), workers=2, observers=[rec], seed=3)
    outside = stoker.Loader(sources.Indexed(n=2), workers=1)
    with loader:
        list(loader)
    list(outside)
    outside.close()
    for r in (rec, scoped):
        kinds = [c[0] for c in r.calls]
        assert kinds == ["start"] + ["batch"] * 5 + ["epoch_end", "close"]
    settings = rec.calls[0][1]
    assert settings["workers"] == 2 and settings["mode"] == "thread"
    assert settings["seed"] == 3 and settings["length"] == 5
    event = rec.calls[1][1]
    assert isinstance(event, stoker.BatchEvent) and event.nbytes == 4 * 8 + 4 * 4
    assert rec.calls[-1][1]["batches"] == 5


def test_a_failing_observer_does_not_break_training(caplog):
    class Broken(Recorder):
        def on_batch(self, event):
            raise RuntimeError("observer bug")

    with stoker.Loader(sources.Indexed(n=3), observers=[Broken()]) as loader:
        assert len(list(loader)) == 3
    assert "observer bug" in caplog.text


def test_input_bound_verdict_names_the_worker_count():
    with stoker.Loader(sources.Indexed(n=12, sleep=0.02), workers=1) as loader:
        list(loader)
        s = loader.stats.summary()
    assert s["verdict"] == "input-bound" and s["wait_fraction"] > 0.5
    assert "workers would keep up (now 1)" in s["advice"]
    assert s["time_to_first_batch_s"] > 0.015


def test_compute_bound_verdict():
    with stoker.Loader(sources.Indexed(n=12), workers=2) as loader:
        for _ in loader:
            time.sleep(0.01)
        s = loader.stats.summary()
    assert s["verdict"] == "compute-bound", s


def _scripted(cpu_per_batch: float) -> dict:
    """Stats of 8 batches that each kept the loop waiting 20 ms, on a fake clock."""
    from stoker._engine.stats import LoaderStats

    now = [0.0]
    stats = LoaderStats(2, "thread", clock=lambda: now[0])
    stats.epoch_started()
    for _ in range(8):
        now[0] += 0.02
        stats.record(0.02, 0.02, cpu_per_batch, 1, 8)
    stats.epoch_ended()
    return stats.summary()


def test_cpu_bound_threads_suggest_processes():
    # Workers that burned CPU for the whole produce time: the GIL is the limit.
    advice = _scripted(cpu_per_batch=0.019)["advice"]
    assert "threads share one GIL, so use use_multiprocessing=True" in advice
    # The same timings spent sleeping (I/O): more workers, not processes.
    advice = _scripted(cpu_per_batch=0.0001)["advice"]
    assert "workers would keep up" in advice and "GIL" not in advice


@pytest.mark.parametrize(("workers", "queue"), [(1, 1), (3, 2), (4, 10)])
def test_never_more_than_queue_plus_workers_batches_exist(workers, queue):
    src = sources.Counting(n=60)
    most = 0
    with stoker.Loader(src, workers=workers, max_queue_size=queue) as loader:
        for delivered, _ in enumerate(loader, start=1):
            time.sleep(0.005)  # a slow consumer lets the queue fill up
            # started - delivered = batches finished or in flight, not yet taken:
            # `queue` may wait for the loop, `workers` more be in flight.
            most = max(most, src.started - delivered)
            assert src.started - delivered <= queue + workers
        assert src.started == 60
    assert most == queue + workers  # and prefetch does fill the budget


def test_stats_give_the_last_epoch_beside_the_totals():
    with stoker.Loader(sources.Indexed(n=25), workers=2) as loader:
        list(loader)
        list(loader)
        s = loader.stats.summary()
    assert s["batches"] == 50 and s["epochs"] == 2
    assert s["epoch"]["batches"] == 25 and s["epoch"]["index"] == 1
    text = repr(loader.stats)
    assert "epoch 1: 25 batches" in text and "total: 50 batches in 2 epochs" in text


def test_stats_memory_does_not_grow_with_batches():
    from stoker._engine.stats import _RESERVOIR, LoaderStats

    stats = LoaderStats(2, "thread")
    stats.epoch_started()
    for i in range(3 * _RESERVOIR):
        stats.record(0.001 * (i % 7), 0.002, 0.001, 1, 8)
    stats.epoch_ended()
    assert len(stats._samples.pairs) == _RESERVOIR
    s = stats.summary()
    assert s["batches"] == 3 * _RESERVOIR and s["bytes"] == 24 * _RESERVOIR
    # Sums stay exact; the reservoir's p95 stays a p95 of the series.
    assert s["mean_wait_s"] == pytest.approx(0.003, rel=0.01)
    assert s["p95_wait_s"] == pytest.approx(0.006)
