"""The data adapter that hands a ``stoker.Loader`` to Keras 3's ``fit``.

Keras 3 turns every ``x`` given to ``fit``/``evaluate``/``predict`` into a
``DataAdapter`` (``keras/src/trainers/data_adapters/__init__.py``), and since Keras
3.7 an ``x`` that already is one is used as it is. That is the one way in that adds
no machinery of Keras' own: a ``PyDataset`` would bring Keras' enqueuer (a second
worker pool, and pickled batches through pipes with processes), and a plain
generator has no length (no progress bar) and is peeked at and re-chained by Keras.
So stoker's workers do all the work and Keras iterates the loader on its own thread.

How Keras drives an adapter, and what this one does at each call:

- ``num_batches`` is the steps of an epoch (the progress bar): ``len(loader)``.
- Each Keras epoch calls ``on_epoch_begin()``, iterates a fresh iterator from
  ``get_*_iterator()`` for ``num_batches`` steps, then calls ``on_epoch_end()``.
  One Keras epoch is one stoker epoch: the iterator pulls from ``iter(loader)`` and
  ``on_epoch_end()`` completes that stoker epoch (which runs the source's
  ``on_epoch_end`` hook once).
- Before the first epoch of an unbuilt model, Keras takes one batch only to learn the
  shapes, then resets (``on_epoch_end()``) and starts for real. That batch is kept
  and served first in the real epoch, so the first epoch still sees every batch and
  the stoker epoch numbers match Keras'.
- With ``fit(steps_per_epoch=S)`` Keras keeps one iterator across its epochs; the
  iterator rolls over into the next stoker epoch when one is used up.
- A pass Keras abandons mid-epoch (an error in the training step, ``stop_training``)
  is like a ``break`` in a ``for`` loop over the loader: the stoker epoch ends there,
  and the next pass starts a fresh one.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
from keras.src.trainers.data_adapters import data_adapter_utils
from keras.src.trainers.data_adapters.data_adapter import DataAdapter

import stoker

# The adapter whose stoker epoch is open, per loader. A loader runs one epoch at a
# time: `iter(loader)` itself ends a paused epoch, as a `break` would. This registry
# only tells the previous adapter (a second fit over the same loader) that its epoch
# is gone, so that it starts a fresh one instead of reading a closed iterator.
_open_epochs: weakref.WeakKeyDictionary[stoker.Loader, LoaderAdapter] = (
    weakref.WeakKeyDictionary()
)


def _class_weights(y: Any, class_weight: dict[int, float]) -> np.ndarray:
    """Per-sample weights from a class -> weight map (Keras' rule for labels)."""
    labels = np.asarray(y)
    if labels.ndim > 1:
        # one-hot or probabilities: the class is the argmax; (n, 1): the value
        labels = labels.argmax(-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype(np.int64)
    return np.array([class_weight.get(int(c), 1.0) for c in labels], np.float32)


class LoaderAdapter(DataAdapter):
    """A ``stoker.Loader`` as Keras 3 input; build it with ``adapt(loader)``.

    Args:
        loader: the loader to iterate; it stays the caller's to close.
        class_weight: optional ``{class: weight}``; batches ``(x, y)`` get the
            sample weights Keras would compute for ``fit(class_weight=...)``.

    Raises:
        ConfigError: ``loader`` is not a ``stoker.Loader`` or has no batches.
    """

    def __init__(
        self, loader: stoker.Loader, class_weight: dict[int, float] | None = None
    ) -> None:
        if not isinstance(loader, stoker.Loader):
            raise stoker.ConfigError(
                f"adapt() takes a stoker.Loader, got {type(loader).__name__}: wrap the "
                "source first, e.g. adapt(stoker.Loader(source, workers=8))"
            )
        if len(loader) == 0:
            raise stoker.ConfigError(
                f"{loader.id} has no batches (len(loader) == 0): Keras needs at "
                "least one batch per epoch"
            )
        self.loader = loader
        self.class_weight = dict(class_weight) if class_weight else None
        self._epoch: Iterator[Any] | None = None  # the stoker epoch in progress
        self._taken = 0  # batches of that epoch handed to Keras
        self._first: Any = None  # its first batch, while it is the only one taken
        self._replay: Any = None  # that batch, if Keras only peeked at it

    # -- what Keras calls -----------------------------------------------------
    def get_numpy_iterator(self) -> Iterator[Any]:
        """Batches as numpy arrays (Keras' numpy backend)."""
        return data_adapter_utils.get_numpy_iterator(self._stream())  # type: ignore[no-any-return]

    def get_jax_iterator(self) -> Iterator[Any]:
        """Batches for the jax backend (arrays as jax accepts them)."""
        return data_adapter_utils.get_jax_iterator(self._stream())  # type: ignore[no-any-return]

    def get_torch_dataloader(self) -> Any:
        """Batches as torch tensors, for the torch backend."""
        # A torch DataLoader with batch_size=None and no workers: it only converts
        # each batch to tensors on the training thread (Keras' own PyDataset path).
        return data_adapter_utils.get_torch_dataloader(self._stream())

    def get_tf_dataset(self) -> Any:
        """Refused: see the message."""
        raise stoker.ConfigError(
            "stoker's Keras adapter does not support the TensorFlow backend: tf.data "
            "would run the loader inside its own threads. Use KERAS_BACKEND=torch "
            "or jax (both tested)"
        )

    @property
    def num_batches(self) -> int:
        """Steps per epoch: ``len(loader)``."""
        return len(self.loader)

    @property
    def batch_size(self) -> int | None:
        """The loader's ``batch_size`` (None when the source gives whole batches)."""
        return self.loader.options.batch_size

    @property
    def has_partial_batch(self) -> bool | None:
        """Unknown (None): the source decides its batches."""
        return None

    @property
    def partial_batch_size(self) -> int | None:
        """Unknown (None)."""
        return None

    def on_epoch_end(self) -> None:
        """Keras ended an epoch (or reset before the first): complete the stoker
        epoch if all its batches were taken, else keep it open (see the module
        docstring)."""
        if self._epoch is None:
            return
        if self._taken >= len(self.loader):
            self._finish()
        elif self._taken == 1 and self._first is not None:
            self._replay = self._first

    # -- internals --------------------------------------------------------------
    def _stream(self) -> Iterator[Any]:
        """One Keras pass; endless, because Keras counts the steps itself."""
        if self._replay is not None:
            batch, self._replay = self._replay, None
            yield batch
        elif self._epoch is not None:
            self._cut()  # the previous pass was abandoned mid-epoch
        while True:
            # A pass that goes on after on_epoch_end (fit(steps_per_epoch=...)) was
            # not a shape peek: its first batch must not be served again.
            self._replay = None
            yield self._next()

    def _next(self) -> Any:
        if self._epoch is not None and self._taken >= len(self.loader):
            self._finish()
        if self._epoch is None:
            other = _open_epochs.get(self.loader)
            if other is not None and other is not self:
                other._release()  # iter(self.loader) below ends its epoch
            self._epoch = iter(self.loader)
            self._taken = 0
            _open_epochs[self.loader] = self
        try:
            raw = next(self._epoch)
        except StopIteration:
            self._release()
            raise stoker.StokerError(
                f"{self.loader.id} ended its epoch before len(loader) batches"
            ) from None
        except BaseException:
            self._release()  # the loader already ended the epoch: the error cut it
            raise
        self._taken += 1
        batch = self._standardize(raw)
        self._first = batch if self._taken == 1 else None
        return batch

    def _release(self) -> Iterator[Any] | None:
        """Forget the open stoker epoch; returns it."""
        epoch, self._epoch = self._epoch, None
        self._taken, self._first, self._replay = 0, None, None
        if _open_epochs.get(self.loader) is self:
            del _open_epochs[self.loader]
        return epoch

    def _finish(self) -> None:
        """Complete the stoker epoch whose batches were all taken."""
        epoch = self._release()
        if epoch is not None:
            # The loader's generator ends (and runs the epoch-end hook) only when
            # asked for one more batch after the last.
            for _ in epoch:
                raise stoker.StokerError(
                    f"{self.loader.id} gave more than len(loader) batches in an epoch"
                )

    def _cut(self) -> None:
        """End the stoker epoch early, as a ``break`` would."""
        epoch = self._release()
        if epoch is not None and hasattr(epoch, "close"):
            epoch.close()

    def _standardize(self, batch: Any) -> Any:
        """Keras' batch forms: ``x``, ``(x,)``, ``(x, y)``, ``(x, y, w)``, a dict."""
        if isinstance(batch, list):
            batch = tuple(batch)
        if isinstance(batch, np.ndarray):
            batch = (batch,)
        if not isinstance(batch, (tuple, dict)) or (
            isinstance(batch, tuple) and len(batch) not in (1, 2, 3)
        ):
            raise stoker.ConfigError(
                f"{self.loader.id} gave a batch of type {type(batch).__name__}"
                f"{f' with {len(batch)} items' if isinstance(batch, tuple) else ''}: "
                "Keras needs an array, a dict, or a tuple (x,), (x, y) or "
                "(x, y, sample_weight)"
            )
        if self.class_weight is not None:
            if not isinstance(batch, tuple) or len(batch) != 2:
                raise stoker.ConfigError(
                    "class_weight needs batches of the form (x, y); this loader gives "
                    f"{type(batch).__name__} batches"
                    + (f" of {len(batch)} items" if isinstance(batch, tuple) else "")
                    + ". Put the weights in the batch as (x, y, sample_weight) instead"
                )
            batch = (*batch, _class_weights(batch[1], self.class_weight))
        return batch
