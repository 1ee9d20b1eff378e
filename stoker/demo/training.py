"""The demo's model and one timed training run, with Keras on stoker.

Importing this module imports Keras; it selects the torch backend first unless
``KERAS_BACKEND`` is already set.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

from stoker.adapters.keras import (
    Sequential,
    TrackingCallback,
)
from stoker.demo.digits import IMAGE_SIZE, DigitsBatches

SEED = 0


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch ops on one thread while the block runs (torch backend only).

    The demo's CNN is too small to gain from torch's intra-op threads, and on a
    small machine they compete with the loader's workers: a parallel op waits for
    its slowest thread, which made single runs here up to 2.5x slower at random.
    """
    if keras.backend.backend() != "torch":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_cnn() -> Sequential:
    """A small CNN for 28x28 digits, the same weights on every call.

    It is kept small on purpose: the demo is about feeding the model, and a model
    whose step takes longer than a batch's latency divided by the workers would hide
    the effect being shown.
    """
    keras.utils.set_random_seed(SEED)
    model = Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def warm_up(batch: tuple[np.ndarray, np.ndarray]) -> None:
    """Fit twice once, so the first timed run pays no one-off start-up cost (the
    first ``fit`` of a process takes about 0.4 s more than later ones here)."""
    for _ in range(2):
        build_cnn().fit(*batch, epochs=1, verbose=0)


@dataclass(frozen=True)
class RunResult:
    """One timed training run."""

    mode: str
    workers: int
    wall_s: float
    accuracy: float


class _Progress(keras.callbacks.Callback):
    def __init__(self, on_batch: Callable[[int], None]) -> None:
        super().__init__()
        self._on_batch = on_batch
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._on_batch(self._epoch)


def train_once(
    train: DigitsBatches,
    test: tuple[np.ndarray, np.ndarray],
    *,
    mode: str,
    workers: int,
    epochs: int,
    on_batch: Callable[[int], None] | None = None,
    run: Any = None,
) -> RunResult:
    """Train a fresh CNN with Keras 2's ``fit_generator`` on stoker; time it.

    The timed part is the call the seed experiment timed: ``fit_generator`` with
    ``workers`` threads or processes (loader start and stop included). Accuracy is
    measured afterwards on the held-out images, in memory.

    Args:
        train: the training Sequence.
        test: held-out ``(images, labels)``.
        mode: ``"threads"`` or ``"processes"``.
        workers: stoker workers.
        epochs: training epochs.
        on_batch: called after every training batch with the epoch number.
        run: a ``stoker.track`` run to log the metrics to, or None.

    Returns:
        The wall time and the test accuracy.
    """
    model = build_cnn()
    callbacks: list[keras.callbacks.Callback] = []
    if on_batch is not None:
        callbacks.append(_Progress(on_batch))
    if run is not None:
        callbacks.append(TrackingCallback(run, batch_every=0))
    start = time.perf_counter()
    model.fit_generator(
        train,
        epochs=epochs,
        workers=workers,
        use_multiprocessing=mode == "processes",
        verbose=0,
        callbacks=callbacks,
        seed=SEED,
    )
    wall = time.perf_counter() - start
    _, accuracy = model.evaluate(*test, batch_size=256, verbose=0)
    return RunResult(mode, workers, wall, float(accuracy))
