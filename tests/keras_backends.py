"""What the Keras tests need to run alike on Keras' torch and JAX backends."""

from __future__ import annotations

import keras


def spy_train_step(model: keras.Model, on_data) -> None:
    """Call ``on_data(batch)`` before each training step, on any Keras backend.

    torch calls ``train_step(data)``; JAX calls ``train_step(state, data)``, under
    ``jit`` unless the model runs eagerly, which gives the spy concrete values.
    """
    original = model.train_step
    if keras.backend.backend() == "jax":
        model.run_eagerly = True

    def train_step(*args):
        on_data(args[-1])
        return original(*args)

    model.train_step = train_step
