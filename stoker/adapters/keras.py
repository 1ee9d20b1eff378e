"""stoker for Keras 3: feed ``model.fit`` from a ``stoker.Loader``.

Two ways in:

- ``adapt(loader)``: ``model.fit(adapt(train), validation_data=adapt(val))``, and
  the same for ``evaluate`` and ``predict``. stoker's workers compute the batches;
  Keras adds no pool of its own (see ``_keras_data`` for how Keras is driven).
- A port of Keras 2's ``fit_generator``/``evaluate_generator``/``predict_generator``
  with the same arguments, as functions taking the model first and as methods of
  ``stoker.adapters.keras.Sequential``/``Model``: old code changes one import.

``TrackingCallback`` logs Keras' metrics to a ``stoker.track`` run.

Keras runs on the backend named by ``KERAS_BACKEND``; stoker is tested with
``torch`` and ``jax``. Importing this module without Keras raises an ``ImportError``
that names ``pip install 'stoker[keras]'``.
"""

from __future__ import annotations

# Keras accepts a ready-made data adapter as ``x`` since 3.7 (keras-team/keras#20349).
_MIN_KERAS = (3, 7)


def _check_keras() -> None:
    try:
        import keras
    except ModuleNotFoundError as exc:
        if exc.name == "keras":
            raise ImportError(
                "stoker.adapters.keras needs Keras 3: pip install 'stoker[keras]'"
            ) from exc
        raise ImportError(
            f"Keras is installed but its backend could not be imported ({exc.name} "
            "is missing). Keras loads the backend named by KERAS_BACKEND (TensorFlow "
            "when unset); stoker is tested with torch: pip install torch and set "
            "KERAS_BACKEND=torch before importing keras"
        ) from exc
    parts = keras.__version__.split(".")
    version = tuple(int(p) for p in parts[:2] if p.isdigit())
    if version < _MIN_KERAS:
        raise ImportError(
            f"stoker.adapters.keras needs keras>={'.'.join(map(str, _MIN_KERAS))} "
            f"(found {keras.__version__}): pip install -U 'stoker[keras]'"
        )


_check_keras()

# The guard above must run before these imports: they import keras themselves.
import stoker  # noqa: E402
from stoker.adapters._keras_data import LoaderAdapter  # noqa: E402
from stoker.adapters._keras_port import (  # noqa: E402
    GeneratorMethods,
    Model,
    Sequential,
    evaluate_generator,
    fit_generator,
    predict_generator,
)
from stoker.adapters._keras_tracking import TrackingCallback  # noqa: E402


def adapt(
    loader: stoker.Loader, class_weight: dict[int, float] | None = None
) -> LoaderAdapter:
    """Wrap a ``stoker.Loader`` as input for ``model.fit``/``evaluate``/``predict``.

    One Keras epoch is one stoker epoch (``len(loader)`` steps on the progress bar).
    The batch order is the loader's (``stoker.Loader(shuffle=True, seed=...)``):
    Keras does not pass ``fit(shuffle=...)`` or ``fit(class_weight=...)`` on to a
    ready-made adapter, so give class weights here.

    Args:
        loader: a ``stoker.Loader``; it stays yours to close (``with`` closes it, also
            when ``fit`` raises).
        class_weight: optional ``{class_index: weight}`` for ``(x, y)`` batches.

    Returns:
        The adapter to pass as ``x`` or ``validation_data``.

    Raises:
        ConfigError: ``loader`` is not a ``stoker.Loader`` or has no batches.
    """
    return LoaderAdapter(loader, class_weight)


__all__ = [
    "GeneratorMethods",
    "LoaderAdapter",
    "Model",
    "Sequential",
    "TrackingCallback",
    "adapt",
    "evaluate_generator",
    "fit_generator",
    "predict_generator",
]
