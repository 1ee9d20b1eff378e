"""A small CNN on scikit-learn's digits in JAX with optax: a plain loop, then stoker.

Run:  .venv/bin/python examples/jax_train.py
      .venv/bin/python examples/jax_train.py --epochs 1 --limit 256 --workers 2

The same per-sample source (each image "read" with ``--latency`` seconds of
waiting), the same model and seed:

- a plain loop: the training thread reads the 32 samples of each batch itself,
  the way a loop over a Python dataset does without a loader;
- ``device_prefetch(stoker.Loader(source, batch_size=32, shuffle=True, seed=0,
  workers=W))``: the workers read and stack, and the next batches are already
  ``jax.device_put`` while the step runs. With several devices, ``sharding="local"``
  splits every batch over them.

Each prints the time and loss of every epoch and the test accuracy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import stoker
from stoker.adapters.jax import device_prefetch

BATCH = 32


class Digits:
    """Sample ``i``: an (8, 8, 1) float32 image in [0, 1] and its label."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, latency: float) -> None:
        self.images = (images / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
        self.labels = labels.astype(np.int32)
        self.latency = latency

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int32]:
        if self.latency:
            time.sleep(self.latency)  # the read a real dataset would wait for
        return self.images[i], self.labels[i]


def init(key: jax.Array) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(key)
    return {
        "conv": jax.random.normal(k1, (3, 3, 1, 16)) * 0.3,
        "conv_b": jnp.zeros(16),
        "dense": jax.random.normal(k2, (16 * 4 * 4, 10)) * 0.05,
        "dense_b": jnp.zeros(10),
    }


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    h = jax.lax.conv_general_dilated(
        x, params["conv"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jax.nn.relu(h + params["conv_b"])
    h = jax.lax.reduce_window(
        h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"
    )
    return h.reshape(h.shape[0], -1) @ params["dense"] + params["dense_b"]


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


optimizer = optax.adam(0.01)


@jax.jit
def step(params: Any, opt_state: Any, x: jax.Array, y: jax.Array) -> tuple:
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


def plain_batches(
    source: Digits, epoch: int
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """One epoch read on the training thread, in a seeded shuffled order."""
    order = np.random.default_rng((0, epoch)).permutation(len(source))
    for start in range(0, len(order), BATCH):
        samples = [source[int(i)] for i in order[start : start + BATCH]]
        yield np.stack([s[0] for s in samples]), np.array([s[1] for s in samples])


def train(name: str, epochs_of: Any, epochs: int, test: tuple[Any, Any]) -> float:
    """Train a fresh CNN on ``epochs_of(epoch)``; prints per epoch; returns seconds."""
    params = init(jax.random.PRNGKey(0))
    opt_state = optimizer.init(params)
    start = time.perf_counter()
    for epoch in range(epochs):
        t0, losses = time.perf_counter(), []
        for x, y in epochs_of(epoch):
            params, opt_state, loss = step(params, opt_state, x, y)
            losses.append(loss)
        mean = float(np.mean(jax.device_get(losses)))  # waits for the last step
        print(
            f"{name:10s} epoch {epoch}: {time.perf_counter() - t0:6.2f} s, "
            f"{len(losses)} steps, loss {mean:.3f}",
            flush=True,
        )
    seconds = time.perf_counter() - start
    accuracy = float((logits(params, test[0]).argmax(1) == test[1]).mean())
    print(f"{name:10s} total {seconds:.2f} s, test accuracy {accuracy:.3f}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--limit", type=int, default=None, help="training samples")
    args = parser.parse_args()

    digits = load_digits()
    n_train = args.limit or 1400
    source = Digits(digits.images[:n_train], digits.target[:n_train], args.latency)
    held_out = Digits(digits.images[1400:], digits.target[1400:], 0.0)
    test = (jnp.asarray(held_out.images), jnp.asarray(held_out.labels))
    # drop_last in both: one batch shape, so the step compiles once
    n_batches = len(source) // BATCH
    source.labels, source.images = (
        source.labels[: n_batches * BATCH],
        source.images[: n_batches * BATCH],
    )

    # Compile the step before either run is timed (numpy and device inputs alike).
    params = init(jax.random.PRNGKey(0))
    x, y = np.zeros((BATCH, 8, 8, 1), np.float32), np.zeros(BATCH, np.int32)
    for args_ in ((x, y), jax.device_put((x, y))):
        jax.block_until_ready(step(params, optimizer.init(params), *args_))

    peer = train("plain loop", lambda e: plain_batches(source, e), args.epochs, test)

    loader = stoker.Loader(
        source, batch_size=BATCH, shuffle=True, seed=0, workers=args.workers
    )
    with device_prefetch(loader, size=2) as batches:
        ours = train("stoker", lambda e: batches, args.epochs, test)
    print(f"stoker took {ours / peer:.2f}x the plain loop's time")


if __name__ == "__main__":
    main()
