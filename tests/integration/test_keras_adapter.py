"""model.fit / evaluate / predict fed by a stoker.Loader through adapt(), real Keras."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import stoker  # noqa: E402
from stoker.adapters._keras_data import _class_weights  # noqa: E402
from stoker.adapters.keras import TrackingCallback, adapt  # noqa: E402
from tests.conftest import stoker_threads  # noqa: E402
from tests.keras_backends import spy_train_step  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.timeout(60)]
# Keras' predict converts its torch outputs with np.asarray(copy=False), which torch
# 2.13's Tensor.__array__ does not accept: numpy warns, for any input, not only ours.
PREDICT_WARNING = (
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


class Recorded(keras.utils.PyDataset):
    """A Keras Sequence that records the batches computed and its epoch hooks."""

    def __init__(self, n: int = 6, rows: int = 8, bad: int | None = None) -> None:
        super().__init__()
        self.n, self.rows, self.bad = n, rows, bad
        self.seen: list[int] = []
        self.ends = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i == self.bad:
            raise KeyError(f"record {i} is missing")
        with self.lock:
            self.seen.append(i)
        rng = np.random.default_rng(i)
        x = rng.random((self.rows, 4)).astype("float32")
        x[:, 0] = i  # the batch index, to check the order Keras saw
        return x, rng.integers(0, 2, self.rows)

    def on_epoch_end(self) -> None:
        self.ends += 1


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def record_batches(model: keras.Model) -> list[int]:
    """Make ``model`` record the index of every batch its training step gets."""
    trained: list[int] = []
    spy_train_step(model, lambda data: trained.append(int(data[0][0, 0])))
    return trained


class SeenByKeras(keras.callbacks.Callback):
    """Keeps the step count the progress bar is given, per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int | None] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(self.params.get("steps"))


def test_fit_maps_keras_epochs_to_stoker_epochs():
    source = Recorded(n=6)
    steps = SeenByKeras()
    model = tiny_model()
    trained = record_batches(model)
    with stoker.Loader(source, workers=3) as loader:
        history = model.fit(adapt(loader), epochs=3, verbose=0, callbacks=[steps])
        assert loader.epoch == 3  # one stoker epoch per Keras epoch
    assert len(history.history["loss"]) == 3
    assert steps.steps == [6, 6, 6]  # the progress bar knows the length
    assert source.ends == 3  # the Sequence's hook, once per epoch
    # Keras' shape peek at the unbuilt model cost no batch: each epoch trains on
    # all 6 in order, and no batch was computed more than once per epoch.
    assert trained == list(range(6)) * 3
    assert sorted(source.seen) == sorted(list(range(6)) * 3)


@pytest.mark.filterwarnings(PREDICT_WARNING)
def test_evaluate_and_predict_keep_batch_order():
    source = Recorded(n=5)
    model = tiny_model()
    arrays = [source[i][0] for i in range(5)]
    with stoker.Loader(Recorded(n=5), workers=4) as loader:
        predicted = model.predict(adapt(loader), verbose=0)
        loss, accuracy = model.evaluate(adapt(loader), verbose=0)
        assert loader.epoch == 2
    expected = model.predict(np.concatenate(arrays), verbose=0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    assert 0.0 <= accuracy <= 1.0 and np.isfinite(loss)


def test_validation_loader_runs_one_stoker_epoch_per_validation():
    train, val = Recorded(n=4), Recorded(n=3)
    with (
        stoker.Loader(train, workers=2) as train_loader,
        stoker.Loader(val, workers=2) as val_loader,
    ):
        history = tiny_model().fit(
            adapt(train_loader), validation_data=adapt(val_loader), epochs=2, verbose=0
        )
        assert val_loader.epoch == 2
    assert len(history.history["val_loss"]) == 2
    assert val.ends == 2 and sorted(val.seen) == sorted(list(range(3)) * 2)


def test_shuffle_is_the_loaders_and_repeats_with_its_seed():
    def orders(seed: int) -> list[list[int]]:
        model = tiny_model()
        trained = record_batches(model)
        with stoker.Loader(Recorded(n=8), workers=3, shuffle=True, seed=seed) as loader:
            model.fit(adapt(loader), epochs=2, verbose=0)
        return [trained[:8], trained[8:]]

    first, again, other = orders(1), orders(1), orders(2)
    assert first == again  # the same seed, the same order, epoch by epoch
    assert first[0] != first[1] and first != other  # reshuffled per epoch and seed
    assert all(sorted(epoch) == list(range(8)) for epoch in first)


def test_fit_steps_per_epoch_continues_the_stoker_epoch():
    source = Recorded(n=6)
    with stoker.Loader(source, workers=2) as loader:
        tiny_model().fit(adapt(loader), steps_per_epoch=3, epochs=4, verbose=0)
        assert loader.epoch == 2  # 4 Keras epochs of 3 = 2 passes over 6 batches
    assert sorted(source.seen) == sorted(list(range(6)) * 2)


def test_worker_error_reaches_fit_with_its_type():
    with stoker.Loader(Recorded(n=8, bad=5), workers=2) as loader:
        with pytest.raises(KeyError, match="record 5 is missing") as caught:
            tiny_model().fit(adapt(loader), epochs=1, verbose=0)
    assert any("source[5]" in note for note in getattr(caught.value, "__notes__", ()))


class Boom(Exception):
    pass


def test_no_worker_outlives_a_fit_that_raised_in_the_training_step():
    model = tiny_model()
    calls = []

    def count(data):
        calls.append(1)
        if len(calls) == 3:
            raise Boom("the training step failed")

    spy_train_step(model, count)
    with pytest.raises(Boom):
        with stoker.Loader(Recorded(n=20), workers=4) as loader:
            model.fit(adapt(loader), epochs=1, verbose=0)
    deadline = time.monotonic() + 5
    while stoker_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not stoker_threads()


def test_a_new_fit_after_an_abandoned_one_starts_a_fresh_epoch():
    source = Recorded(n=6)
    model = tiny_model()
    with stoker.Loader(source, workers=2) as loader:

        class StopAfterTwo(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 1:
                    self.model.stop_training = True

        trained = record_batches(model)
        model.fit(adapt(loader), epochs=1, verbose=0, callbacks=[StopAfterTwo()])
        assert trained == [0, 1]
        model.fit(adapt(loader), epochs=1, verbose=0)  # a new adapter, same loader
        assert loader.epoch == 2
    assert trained == [0, 1, *range(6)]  # the second fit got a whole, fresh epoch


def test_class_weight_weights_each_sample():
    assert _class_weights(np.array([0, 1, 2]), {1: 3.0}).tolist() == [1, 3, 1]
    one_hot = np.eye(3)[[2, 0]]
    assert _class_weights(one_hot, {2: 0.5}).tolist() == [0.5, 1.0]
    with stoker.Loader(Recorded(n=3), workers=2) as loader:
        history = tiny_model().fit(
            adapt(loader, class_weight={0: 0.0, 1: 0.0}), epochs=1, verbose=0
        )
    assert history.history["loss"] == [0.0]  # every sample weighted 0


def test_adapt_rejects_what_is_not_a_loader():
    with pytest.raises(stoker.ConfigError, match=r"adapt\(stoker.Loader\(source"):
        adapt(Recorded())
    with stoker.Loader([], workers=1) as empty:
        with pytest.raises(stoker.ConfigError, match="no batches"):
            adapt(empty)


def test_tensorflow_datasets_are_refused_with_the_fix():
    with stoker.Loader(Recorded(n=2), workers=1) as loader:
        with pytest.raises(stoker.ConfigError, match="KERAS_BACKEND=torch"):
            adapt(loader).get_tf_dataset()


class FakeRun:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []

    def log(self, step: int, **metrics: float) -> None:
        self.logged.append((step, metrics))


def test_tracking_callback_logs_epoch_and_batch_metrics():
    run = FakeRun()
    with stoker.Loader(Recorded(n=4), workers=2) as loader:
        tiny_model().fit(
            adapt(loader),
            epochs=2,
            verbose=0,
            callbacks=[TrackingCallback(run, batch_every=2)],
        )
    epochs = [(step, m) for step, m in run.logged if "loss" in m]
    batches = [(step, m) for step, m in run.logged if "batch_loss" in m]
    assert [step for step, _ in epochs] == [0, 1]
    assert set(epochs[0][1]) == {"loss", "accuracy"}
    assert [step for step, _ in batches] == [2, 4, 6, 8]


def test_tracking_callback_without_a_run_says_how_to_start_one():
    with stoker.Loader(Recorded(n=2), workers=1) as loader:
        with pytest.raises(stoker.StokerError, match="stoker.track"):
            tiny_model().fit(
                adapt(loader), epochs=1, verbose=0, callbacks=[TrackingCallback()]
            )


def test_tracking_callback_records_into_the_active_stoker_run(tmp_path):
    track = pytest.importorskip("stoker.track")
    store = tmp_path / "store.db"
    with track("keras", store=store, capture=False, sample=False) as run:
        with stoker.Loader(Recorded(n=4), workers=2) as loader:
            tiny_model().fit(
                adapt(loader), epochs=3, verbose=0, callbacks=[TrackingCallback()]
            )
    metrics = track.get_run(run.id, store)["metrics"]
    assert metrics["loss"]["count"] == 3 and metrics["loss"]["step"] == 2
    assert metrics["batch_loss"]["count"] == 12
    assert len(track.get_run(run.id, store)["loaders"]) == 1  # the loader reported
