"""Keras 2's fit_generator / evaluate_generator / predict_generator on stoker."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import psutil  # noqa: E402

import stoker  # noqa: E402
from stoker.adapters import keras as sk  # noqa: E402
from stoker.demo.digits import DigitsBatches, prepare_digits  # noqa: E402
from tests.conftest import stoker_threads  # noqa: E402
from tests.keras_backends import spy_train_step  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.timeout(90)]
PREDICT_WARNING = (
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _processes_unavailable() -> str | None:
    try:
        with stoker.Loader([np.zeros(1)], use_multiprocessing=True, workers=1) as probe:
            list(probe)
    except (NotImplementedError, stoker.ConfigError) as exc:
        return str(exc)
    return None


_NO_PROCESSES = _processes_unavailable()
MODES = [
    pytest.param(False, id="threads"),
    pytest.param(
        True,
        id="processes",
        marks=pytest.mark.skipif(
            _NO_PROCESSES is not None, reason=f"no process workers: {_NO_PROCESSES}"
        ),
    ),
]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """The demo's digit files (module-level sources: process workers import them)."""
    return prepare_digits(tmp_path_factory.getbasetemp() / "stoker-digits")[:96]


def cnn(functional: bool = False):
    keras.utils.set_random_seed(0)
    layers = [
        keras.layers.MaxPooling2D(4),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ]
    if functional:
        inputs = outputs = keras.Input((28, 28, 1))
        for layer in layers:
            outputs = layer(outputs)
        model = sk.Model(inputs, outputs)
    else:
        model = sk.Sequential([keras.Input((28, 28, 1)), *layers])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def worker_processes() -> list[psutil.Process]:
    """Live processes below this one, except multiprocessing's forkserver and
    resource tracker (they serve the whole session, not one loader)."""
    me = os.getpid()
    out = []
    for proc in psutil.Process(me).children(recursive=True):
        try:
            command = " ".join(proc.cmdline())
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.ppid() == me and (
                "forkserver" in command or "resource_tracker" in command
            ):
                continue
        except psutil.Error:
            continue  # gone meanwhile
        out.append(proc)
    return out


def no_workers_left() -> bool:
    deadline = time.monotonic() + 5
    while stoker_threads() or worker_processes():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.filterwarnings(PREDICT_WARNING)
@pytest.mark.parametrize("use_multiprocessing", MODES)
def test_sequence_fit_evaluate_predict(items, use_multiprocessing):
    seq = DigitsBatches(items[:64], batch_size=16, latency=0.005)
    val = DigitsBatches(items[64:], batch_size=16, latency=0.0)
    model = cnn()
    history = model.fit_generator(
        seq,
        epochs=2,
        workers=3,
        use_multiprocessing=use_multiprocessing,
        validation_data=val,
        validation_steps=1,
        verbose=0,
    )
    assert len(history.history["loss"]) == 2 and "val_accuracy" in history.history
    loss, accuracy = model.evaluate_generator(
        val, workers=2, use_multiprocessing=use_multiprocessing
    )
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    predicted = model.predict_generator(
        val, steps=1, workers=2, use_multiprocessing=use_multiprocessing
    )
    expected = model.predict(val[0][0], verbose=0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    assert no_workers_left()


def test_generator_fit_and_evaluate(items):
    seq = DigitsBatches(items, batch_size=16, latency=0.0)

    def endless():
        while True:
            yield from (seq[i] for i in range(len(seq)))

    model = cnn(functional=True)
    assert isinstance(model, keras.Model) and hasattr(model, "fit_generator")
    batches = endless()
    history = sk.fit_generator(
        model, batches, steps_per_epoch=4, epochs=2, workers=4, verbose=0
    )
    assert len(history.history["loss"]) == 2
    result = sk.evaluate_generator(model, batches, steps=3)
    assert len(result) == 2
    assert no_workers_left()


def test_generator_arguments_that_cannot_be_honoured(items):
    model = cnn()
    gen = (b for b in [DigitsBatches(items)[0]] * 4)
    with pytest.raises(stoker.ConfigError, match="steps_per_epoch=N"):
        sk.fit_generator(model, gen)
    with pytest.raises(stoker.ConfigError, match="cannot be sent to another process"):
        sk.fit_generator(model, gen, steps_per_epoch=2, use_multiprocessing=True)
    with pytest.raises(stoker.ConfigError, match="workers=0"):
        sk.fit_generator(model, DigitsBatches(items), workers=0)
    with pytest.raises(stoker.ConfigError, match="validation_steps=N"):
        sk.fit_generator(model, DigitsBatches(items), validation_data=gen)
    with pytest.raises(stoker.ConfigError, match="keras.utils.Sequence"):
        sk.fit_generator(model, 42)
    assert no_workers_left()


@pytest.mark.parametrize("use_multiprocessing", MODES)
def test_worker_error_surfaces_with_its_type(items, use_multiprocessing):
    broken = [*items[:32], ("/nonexistent/digit.png", 3), *items[33:64]]
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        cnn().fit_generator(
            DigitsBatches(broken, batch_size=16, latency=0.0),
            workers=2,
            use_multiprocessing=use_multiprocessing,
            verbose=0,
        )
    assert no_workers_left()


class Boom(Exception):
    pass


@pytest.mark.parametrize("use_multiprocessing", MODES)
def test_no_worker_outlives_a_fit_that_raised_in_the_training_step(
    items, use_multiprocessing
):
    model = cnn()
    steps = []

    def count(data):
        steps.append(1)
        if len(steps) == 2:
            raise Boom("the training step failed")

    spy_train_step(model, count)
    with pytest.raises(Boom):
        model.fit_generator(
            DigitsBatches(items, batch_size=8, latency=0.01),
            workers=4,
            use_multiprocessing=use_multiprocessing,
            verbose=0,
        )
    assert no_workers_left()


def test_initial_epoch_resumes_the_shuffled_order(items):
    seen: list[list[float]] = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([])

    def run(initial_epoch: int) -> list[list[float]]:
        seen.clear()
        model = cnn()
        # the sum of the images identifies the batch
        spy_train_step(
            model, lambda data: seen[-1].append(round(float(data[0].sum()), 3))
        )
        model.fit_generator(
            DigitsBatches(items[:64], batch_size=16, latency=0.0),
            epochs=3,
            initial_epoch=initial_epoch,
            seed=7,
            workers=2,
            verbose=0,
            callbacks=[Spy()],
        )
        return [list(epoch) for epoch in seen]

    full, resumed = run(0), run(2)
    assert resumed == full[2:]
    assert full[0] != full[1]  # shuffle=True, Keras 2's default, reshuffles


def test_class_weight_is_applied(items):
    seq = DigitsBatches(items[:32], batch_size=16, latency=0.0)
    weights = {label: 0.0 for label in range(10)}
    history = cnn().fit_generator(seq, class_weight=weights, verbose=0)
    assert history.history["loss"] == [0.0]
