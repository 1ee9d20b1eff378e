"""``TrackingCallback``: Keras' metrics into a ``stoker.track`` run.

Epoch metrics keep Keras' names (``loss``, ``accuracy``, ``val_loss``...) with the
epoch number as the step, as Keras' History has them. Batch metrics get a ``batch_``
prefix and the count of training batches since the callback was made as the step,
so each series has one meaning of "step" and a resumed ``fit`` continues it.
"""

from __future__ import annotations

from typing import Any

import keras

import stoker


def active_run() -> Any:
    """The tracking run active now, or None; None too while ``stoker.track`` is
    not part of this build."""
    try:
        import stoker.track as track
    except ImportError:
        return None
    finder = getattr(track, "active_run", None)
    return finder() if callable(finder) else None


def _scalars(logs: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue  # not a scalar (a learning-rate schedule object, say)
        out[f"{prefix}{key}"] = number
    return out


class TrackingCallback(keras.callbacks.Callback):
    """Logs epoch and batch metrics to a stoker tracking run.

    Args:
        run: the run to log to (anything with ``log(step=..., **metrics)``); None
            uses the run active when training starts (``with stoker.track(...)``).
        batch_every: log batch metrics every this many training batches; 0 logs
            epoch metrics only.

    Raises:
        StokerError: at the start of training, when ``run`` is None and no
            tracking run is active.
    """

    def __init__(self, run: Any = None, batch_every: int = 1) -> None:
        super().__init__()
        if isinstance(batch_every, bool) or not isinstance(batch_every, int):
            raise stoker.ConfigError(
                f"batch_every={batch_every!r}: expected a whole number >= 0"
            )
        if batch_every < 0:
            raise stoker.ConfigError(f"batch_every={batch_every}: expected >= 0")
        self._given = run
        self.run: Any = run
        self.batch_every = batch_every
        self.step = 0  # training batches seen

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Find the run to log to (see the class docstring)."""
        self.run = self._given if self._given is not None else active_run()
        if self.run is None:
            raise stoker.StokerError(
                "TrackingCallback found no tracking run: train inside "
                "`with stoker.track('name') as run:` or pass TrackingCallback(run=run)"
            )

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        """Log the batch's metrics every ``batch_every`` batches."""
        self.step += 1
        if self.batch_every and self.step % self.batch_every == 0:
            metrics = _scalars(logs, "batch_")
            if metrics:
                self.run.log(step=self.step, **metrics)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Log the epoch's metrics (validation ones included) at step ``epoch``."""
        metrics = _scalars(logs)
        if metrics:
            self.run.log(step=epoch, **metrics)
