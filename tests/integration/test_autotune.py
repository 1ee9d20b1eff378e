# mypy: disable-error-code="arg-type,attr-defined"
"""workers="auto", max_memory and the warning, on real threads and processes.

The output bytes never depend on the controller: resizing mid-epoch (forced here at
fixed batches, so the test does not race the clock) delivers every batch once, in
order, with the same bytes as a fixed count.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

import stoker
from stoker._engine import govern
from tests import sources
from tests.harness import as_bytes, ids_of

pytestmark = pytest.mark.timeout(60)

BACKENDS = [
    pytest.param({}, id="thread"),
    pytest.param({"use_multiprocessing": True, "start_method": "fork"}, id="fork"),
]


def _reference(n: int = 40) -> list[list[bytes]]:
    """Two epochs of bytes with one worker: what every setting must deliver."""
    with stoker.Loader(sources.Jittery(n=n), workers=1, shuffle=True, seed=11) as t:
        return [[as_bytes(b) for b in t] for _ in range(2)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_resizing_mid_epoch_drops_repeats_and_reorders_nothing(backend):
    # The engine's half of "auto": grow and shrink between batches, forced at fixed
    # points. Every batch arrives once, in order, with the same bytes.
    plan = {3: 6, 9: 1, 15: 4, 22: 2, 30: 5}
    reference = _reference()
    with stoker.Loader(sources.Jittery(n=40), workers=2, shuffle=True, seed=11,
                       timeout=30, **backend) as loader:  # fmt: skip
        for epoch in range(2):
            got = []
            for k, batch in enumerate(loader):
                got.append(as_bytes(batch))
                if k in plan:
                    loader._feed.resize(plan[k], plan[k] + 3)
            assert got == reference[epoch]


@pytest.mark.parametrize("ordered", [True, False])
def test_moving_between_threads_and_processes_mid_epoch_changes_no_byte(ordered):
    # use_multiprocessing="auto"'s engine half, forced at fixed batches: threads ->
    # processes -> threads -> processes inside one epoch, then a whole epoch after.
    plan = {4: "process", 16: "thread", 27: "process"}
    reference = _reference()
    with stoker.Loader(sources.Jittery(n=40), workers=2, use_multiprocessing="auto",
                       shuffle=True, seed=11, ordered=ordered, start_method="fork",
                       timeout=30) as loader:  # fmt: skip
        feed = loader._feed
        for epoch in range(2):
            got, when = [], []
            for k, batch in enumerate(loader):
                got.append(as_bytes(batch))
                if epoch == 0 and k in plan:
                    when.append(feed.switch_mode(plan[k], 2, 6))
            if ordered:
                assert got == reference[epoch]
            else:
                assert sorted(got) == sorted(reference[epoch])
            if epoch == 0:
                # The first move is at once; the later ones too unless the one
                # before had batches out still (then from the next epoch).
                assert when[0] == "now" and set(when) <= {"now", "next epoch"}
        assert feed.mode == "process" and loader.stats.summary()["mode"] == "thread"


def test_a_move_holds_back_the_tokens_the_old_run_still_uses():
    # The loop is slow, so 2 threads fill their queue: those batches still hold
    # memory after the move, and the processes start with that many fewer tokens.
    reference = _reference()
    with stoker.Loader(sources.Jittery(n=40), workers=2, max_queue_size=4,
                       use_multiprocessing="auto", shuffle=True, seed=11,
                       start_method="fork", timeout=30) as loader:  # fmt: skip
        feed = loader._feed
        got, held = [], -1
        for k, batch in enumerate(loader):
            got.append(as_bytes(batch))
            if k == 2:
                time.sleep(0.2)  # the threads fill the budget of 6
                assert feed.switch_mode("process", 2, 6) == "now"
                held = feed._credit
                assert held >= 4, held  # 6 out (the sleep may not quite fill it)
                assert feed.backend._budget == 6 - held
            elif 2 < k < 2 + held:  # each old batch taken frees one token
                assert feed.backend._budget == 6 - (held - (k - 2))
            elif k == 2 + held:
                assert feed._credit == 0 and feed.backend._budget == 6
        assert got == reference[0]


def test_an_epoch_cut_short_during_a_move_leaves_nothing_behind():
    reference = _reference()
    with stoker.Loader(sources.Jittery(n=40), workers=2, use_multiprocessing="auto",
                       shuffle=True, seed=11, start_method="fork",
                       timeout=30) as loader:  # fmt: skip
        feed = loader._feed
        for k, _ in enumerate(loader):
            if k == 3:
                assert feed.switch_mode("process", 2, 6) == "now"
                break
        # The next epoch runs on processes alone, every batch of it, in order. It
        # starts at once: the processes' tasks still out were all answered
        # "skipped", and waiting for more slept the whole join timeout (10 s).
        t0 = time.perf_counter()
        assert [as_bytes(b) for b in loader] == reference[1]
        assert time.perf_counter() - t0 < 5.0
        assert feed.mode == "process" and feed._leaving is None
        pids = feed.backend.pids
        assert pids
    assert not [t for t in threading.enumerate() if "-worker-" in t.name]


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_delivers_the_same_bytes_as_fixed_settings(backend):
    auto = {"workers": "auto", "max_queue_size": "auto"}
    with stoker.Loader(sources.Jittery(n=40), shuffle=True, seed=11, timeout=30,
                       **auto, **backend) as loader:  # fmt: skip
        reference = _reference()
        for epoch in range(2):
            assert [as_bytes(b) for b in loader] == reference[epoch]
        s = loader.stats.summary()
    assert s["mode"] == ("process" if backend else "thread")
    assert s["workers"] >= 1 and isinstance(s["tuning"], list)


def test_auto_threads_grow_for_a_slow_source_and_say_why():
    with stoker.Loader(sources.Indexed(n=120, sleep=0.02), workers="auto") as loader:
        assert ids_of(list(loader)) == list(range(120))
        s = loader.stats.summary()
    grows = [d for d in s["tuning"] if d["setting"] == "workers"]
    assert grows and grows[0]["from"] == 2 and grows[0]["to"] > 2, s["tuning"]
    assert set(grows[0]) >= {"at_batch", "setting", "from", "to", "why"}
    assert "waited" in grows[0]["why"]
    assert s["workers"] > 2  # far past the one or two cores of a test machine


def test_auto_threads_shrink_when_idle():
    # A fast source and a slow training step: two workers are one too many.
    with stoker.Loader(sources.Indexed(n=100), workers="auto") as loader:
        for _ in loader:
            time.sleep(0.01)
        s = loader.stats.summary()
    assert s["workers"] == 1, s["tuning"]
    assert "busy" in s["tuning"][0]["why"]


def test_auto_processes_stay_within_the_cores():
    with stoker.Loader(sources.Indexed(n=60, sleep=0.02), workers="auto",
                       use_multiprocessing=True, timeout=30) as loader:  # fmt: skip
        assert ids_of(list(loader)) == list(range(60))
        s = loader.stats.summary()
        started = len(loader._feed.backend.pids)
    cores = govern.tune.usable_cores()
    assert s["workers"] <= cores and started <= cores
    assert s["mode"] == "process"


def test_one_batch_over_max_memory_is_a_config_error():
    src = sources.Indexed(n=4, shape=(1000,))  # 8 KB of int64 + 4 KB of float32
    with stoker.Loader(src, workers=1, max_memory=4000) as loader:
        with pytest.raises(stoker.ConfigError, match="more than max_memory"):
            list(loader)


def test_max_memory_bounds_batches_in_flight():
    src = sources.Indexed(n=30, shape=(1000,))  # 12 KB per batch
    with stoker.Loader(src, workers=2, max_queue_size=10, max_memory=60_000) as loader:
        assert ids_of(list(loader)) == list(range(30))
        s = loader.stats.summary()
    cut = [d for d in s["tuning"] if d["setting"] == "max_queue_size"]
    assert cut and cut[0]["from"] == 10 and cut[0]["to"] == 3, s["tuning"]
    assert "max_memory" in cut[0]["why"]
    assert s["mean_queue_depth"] <= 5  # 5 batches of 12 KB fit in 60 KB


def test_fixed_settings_warn_once_when_the_loop_waits(caplog, monkeypatch):
    monkeypatch.setattr(govern, "WARN_AFTER_S", 0.05)
    with caplog.at_level(logging.WARNING, logger="stoker"):
        with stoker.Loader(sources.Indexed(n=40, sleep=0.01), workers=1) as loader:
            list(loader)
            list(loader)
    warnings = [r for r in caplog.records if "waited" in r.getMessage()]
    assert len(warnings) == 1
    assert "workers='auto'" in warnings[0].getMessage()


def test_no_warning_with_auto(caplog, monkeypatch):
    monkeypatch.setattr(govern, "WARN_AFTER_S", 0.05)
    with caplog.at_level(logging.WARNING, logger="stoker"):
        with stoker.Loader(sources.Indexed(n=40, sleep=0.01), workers="auto") as ld:
            list(ld)
    assert not [r for r in caplog.records if "waited" in r.getMessage()]


def test_the_tracked_run_keeps_the_decisions(tmp_path):
    import stoker.track as T

    store = tmp_path / "store.db"
    with T.track("auto", store=store, capture=False, sample=False) as run:
        with stoker.Loader(sources.Indexed(n=80, sleep=0.01), workers="auto") as ld:
            list(ld)
    (row,) = T.get_run(run.id, store)["loaders"]
    assert row["settings"]["auto"] == ["workers"]
    tuning = row["summary"]["tuning"]
    assert tuning and tuning[0]["setting"] == "workers" and tuning[0]["why"]
    assert row["summary"]["workers"] == tuning[-1]["to"]


class GilBound:
    """Pure-Python work per batch (holds the GIL), then an array from the index."""

    def __init__(self, n: int, ops: int = 20_000) -> None:
        self.n = n
        self.ops = ops

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        acc = i + 1
        for _ in range(self.ops):
            acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
        return np.full(4, acc, dtype=np.int64), stoker.rng().standard_normal(3)


@pytest.fixture
def idle_machine(monkeypatch):
    """The machine reads as 90% idle: the other jobs of a loaded test machine would
    (rightly) stop the move; the rule itself is tested in test_tune_controller."""
    ticks = [0.0]

    def cpu_times():
        ticks[0] += 1000.0
        return 0.9 * ticks[0], ticks[0]

    monkeypatch.setattr(govern.tune, "cpu_times", cpu_times)


@pytest.mark.usefixtures("idle_machine")
def test_auto_moves_gil_bound_work_to_processes_and_says_so(caplog):
    # The first window (0.15 s) shows threads taking turns on the GIL; the move
    # takes effect at the next epoch start.
    src = GilBound(60)
    epochs = 10
    with stoker.Loader(src, workers=1, seed=3) as ref:
        reference = [[as_bytes(b) for b in ref] for _ in range(epochs)]
    with caplog.at_level(logging.WARNING, logger="stoker"):
        with stoker.Loader(src, workers="auto", use_multiprocessing="auto", seed=3,
                           start_method="fork", timeout=30) as loader:  # fmt: skip
            got = [[as_bytes(b) for b in loader] for _ in range(epochs)]
            s = loader.stats.summary()
    assert got == reference  # the moves change no bit
    modes = [d for d in s["tuning"] if d["setting"] == "mode"]
    assert modes, s["tuning"]
    assert (modes[0]["from"], modes[0]["to"]) == ("thread", "process")
    assert "GIL" in modes[0]["why"] and "from batch" in modes[0]["why"]
    # On a busy machine the processes may not pay: then it goes back, and says why.
    assert len(modes) == 1 or "back to threads" in modes[1]["why"]
    assert s["mode"] == modes[-1]["to"]
    said = [r for r in caplog.records if "moving to process" in r.getMessage()]
    assert len(said) == 1


def test_auto_keeps_io_bound_work_on_threads():
    with stoker.Loader(sources.Indexed(n=60, sleep=0.01), workers="auto",
                       use_multiprocessing="auto") as loader:  # fmt: skip
        list(loader)
        list(loader)
        s = loader.stats.summary()
    assert s["mode"] == "thread"
    assert not [d for d in s["tuning"] if d["setting"] == "mode"]


@pytest.mark.usefixtures("idle_machine")
def test_a_source_that_cannot_cross_stays_on_threads(caplog):
    src = GilBound(60)
    src.hook = lambda: None  # a lambda does not pickle: spawn could not send it
    with caplog.at_level(logging.WARNING, logger="stoker"):
        with stoker.Loader(src, workers="auto", use_multiprocessing="auto",
                           start_method="spawn", timeout=30) as loader:  # fmt: skip
            for _ in range(10):
                list(loader)
            s = loader.stats.summary()
    assert s["mode"] == "thread"
    said = [
        r.getMessage() for r in caplog.records if "stays on threads" in r.getMessage()
    ]
    assert len(said) == 1 and "hook" in said[0]
