"""Keras 2's ``fit_generator``, ``evaluate_generator`` and ``predict_generator``,
ported to Keras 3 and run on stoker.

Keras 3 removed these methods and moved ``workers``/``use_multiprocessing``/
``max_queue_size`` onto ``PyDataset``. Here they keep their Keras 2 arguments and
defaults; the data goes through a ``stoker.Loader`` built from those arguments and
closed when the call returns or raises, so no worker outlives the call.

Keras 2 behaviour kept: ``shuffle`` shuffles the batch order of a ``Sequence`` each
epoch and is ignored for generators; ``steps_per_epoch`` shorter than a
``Sequence`` continues where the last epoch ended; evaluation with ``steps`` uses the
first ``steps`` batches; generators need ``steps_per_epoch``/``validation_steps``/
``steps``. What stoker cannot honour raises ``ConfigError`` with the fix:
``workers=0`` and a generator with ``use_multiprocessing=True``.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras

import stoker
from stoker.adapters._keras_data import LoaderAdapter
from stoker.adapters._keras_head import FirstBatches


def _is_indexable(data: Any) -> bool:
    return hasattr(data, "__getitem__") and not hasattr(data, "__next__")


def _check_workers(workers: Any) -> None:
    if workers == 0:
        raise stoker.ConfigError(
            "workers=0 (run the generator on the training thread) is not available "
            "with stoker: use workers=1, one background worker that computes one "
            "batch at a time, so a source that is not thread-safe stays safe"
        )


def make_loader(
    data: Any,
    *,
    steps: int | None,
    workers: int,
    use_multiprocessing: bool,
    max_queue_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    first_steps: bool = False,
    argument: str = "steps_per_epoch",
) -> stoker.Loader:
    """The loader behind one ``*_generator`` call.

    Args:
        data: a ``keras.utils.Sequence``/``PyDataset`` (or any ``__len__`` +
            ``__getitem__`` source), a generator, or a ``factory(worker, workers)``.
        steps: batches per epoch; None for ``len(data)``.
        workers: stoker workers.
        use_multiprocessing: processes instead of threads.
        max_queue_size: finished batches allowed to wait.
        shuffle: shuffle a sequence's batch order each epoch.
        seed: seed of that order (None: a fresh one).
        first_steps: ``steps`` means "the first ``steps`` batches" (evaluation).
        argument: the name of ``steps`` in the caller, for error messages.

    Returns:
        A new loader; the caller closes it.

    Raises:
        ConfigError: an argument that cannot be honoured, with the fix.
    """
    _check_workers(workers)
    if _is_indexable(data) and not isinstance(data, (str, bytes)):
        source = data
        if first_steps and steps is not None:
            n = len(data) if hasattr(data, "__len__") else data.num_batches
            if steps < n:
                source = FirstBatches(data, steps)
            steps = None
        return stoker.Loader(
            source,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
            shuffle=shuffle,
            seed=seed,
            steps_per_epoch=steps,
        )
    if not (inspect.isgenerator(data) or hasattr(data, "__next__") or callable(data)):
        raise stoker.ConfigError(
            f"got {type(data).__name__}: pass a keras.utils.Sequence/PyDataset (or any "
            "object with __len__ and __getitem__), a generator, or a function "
            "factory(worker_index, num_workers) returning one"
        )
    if steps is None:
        raise stoker.ConfigError(
            f"a generator has no length: pass {argument}=N (Keras 2 required it too), "
            "or use a keras.utils.Sequence"
        )
    if use_multiprocessing:
        raise stoker.ConfigError(
            "use_multiprocessing=True with a generator: a generator cannot be sent to "
            "another process (Keras 2 copied it into each one and duplicated your "
            "data). Use use_multiprocessing=False, or turn the generator into a "
            "keras.utils.Sequence to run it on processes"
        )
    return stoker.Loader.from_generator(
        data, steps_per_epoch=steps, workers=workers, max_queue_size=max_queue_size
    )


def _start_at_epoch(loader: stoker.Loader, epoch: int) -> None:
    """Make the loader's next epoch number ``epoch`` (``initial_epoch`` resumes)."""
    if epoch <= 0 or isinstance(loader.source, FirstBatches):
        return
    state = loader.state_dict()
    if state["kind"] != "indexed":
        return  # a generator's stream just continues
    state.update(epoch=epoch, position=0, delivered_after=[])
    loader.load_state_dict(state)


def fit_generator(
    model: keras.Model,
    generator: Any,
    steps_per_epoch: int | None = None,
    epochs: int = 1,
    verbose: int | str = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    validation_data: Any = None,
    validation_steps: int | None = None,
    validation_freq: int = 1,
    class_weight: dict[int, float] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    shuffle: bool = True,
    initial_epoch: int = 0,
    *,
    seed: int | None = None,
) -> keras.callbacks.History:
    """Keras 2's ``model.fit_generator``, on stoker workers.

    Args:
        model: a compiled Keras 3 model.
        generator: a ``keras.utils.Sequence``/``PyDataset`` (or any object with
            ``__len__`` and ``__getitem__``), a generator, or a
            ``factory(worker_index, num_workers)`` returning one.
        steps_per_epoch: batches per epoch; default ``len(generator)``; required
            for a generator.
        epochs: the epoch to stop before (Keras' meaning, with ``initial_epoch``).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: Keras callbacks.
        validation_data: a Sequence or generator (run on stoker like the training
            data), or a tuple ``(x, y)``/``(x, y, sample_weight)`` of arrays.
        validation_steps: validation batches (the first ones of a Sequence);
            required for a generator.
        validation_freq: validate every this many epochs.
        class_weight: ``{class_index: weight}`` applied to ``(x, y)`` batches.
        max_queue_size: finished batches allowed to wait for the training step.
        workers: stoker workers (threads, or processes with
            ``use_multiprocessing``). A generator runs on one of them at a time.
        use_multiprocessing: processes instead of threads (Sequences only).
        shuffle: shuffle a Sequence's batch order each epoch (not generators).
        initial_epoch: the epoch to start at (to resume a run).
        seed: stoker extension: the seed of the shuffled order, for runs that
            repeat exactly.

    Returns:
        The ``History`` of ``model.fit``.

    Raises:
        ConfigError: an argument that cannot be honoured; the message says the fix.
    """
    train = make_loader(
        generator,
        steps=steps_per_epoch,
        workers=workers,
        use_multiprocessing=use_multiprocessing,
        max_queue_size=max_queue_size,
        shuffle=shuffle,
        seed=seed,
    )
    val_loader: stoker.Loader | None = None
    try:
        _start_at_epoch(train, initial_epoch)
        val: Any = validation_data
        if validation_data is not None and not isinstance(validation_data, tuple):
            val_loader = make_loader(
                validation_data,
                steps=validation_steps,
                workers=workers,
                use_multiprocessing=use_multiprocessing,
                max_queue_size=max_queue_size,
                first_steps=True,
                argument="validation_steps",
            )
            val = LoaderAdapter(val_loader)
        return model.fit(
            LoaderAdapter(train, class_weight),
            epochs=epochs,
            verbose=verbose,
            callbacks=callbacks,
            validation_data=val,
            validation_freq=validation_freq,
            initial_epoch=initial_epoch,
        )
    finally:
        train.close()
        if val_loader is not None:
            val_loader.close()


def _over_first_steps(
    method: Any,
    generator: Any,
    steps: int | None,
    *,
    workers: int,
    use_multiprocessing: bool,
    max_queue_size: int,
    verbose: int | str,
    callbacks: list[keras.callbacks.Callback] | None,
) -> Any:
    """Run ``model.evaluate`` or ``model.predict`` over the first ``steps`` batches."""
    with make_loader(
        generator,
        steps=steps,
        workers=workers,
        use_multiprocessing=use_multiprocessing,
        max_queue_size=max_queue_size,
        first_steps=True,
        argument="steps",
    ) as loader:
        return method(LoaderAdapter(loader), verbose=verbose, callbacks=callbacks)


def evaluate_generator(
    model: keras.Model,
    generator: Any,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int | str = 0,
) -> Any:
    """Keras 2's ``model.evaluate_generator``, on stoker workers.

    Args:
        model: a compiled Keras 3 model.
        generator: a Sequence/PyDataset, a generator, or a factory (see
            ``fit_generator``).
        steps: batches to evaluate (the first ones of a Sequence); default all;
            required for a generator.
        callbacks: Keras callbacks.
        max_queue_size: finished batches allowed to wait.
        workers: stoker workers.
        use_multiprocessing: processes instead of threads (Sequences only).
        verbose: 0 silent, 1 progress bar.

    Returns:
        The loss, or a list of the loss and the metrics (as ``model.evaluate``).

    Raises:
        ConfigError: an argument that cannot be honoured; the message says the fix.
    """
    return _over_first_steps(
        model.evaluate,
        generator,
        steps,
        workers=workers,
        use_multiprocessing=use_multiprocessing,
        max_queue_size=max_queue_size,
        verbose=verbose,
        callbacks=callbacks,
    )


def predict_generator(
    model: keras.Model,
    generator: Any,
    steps: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    max_queue_size: int = 10,
    workers: int = 1,
    use_multiprocessing: bool = False,
    verbose: int | str = 0,
) -> Any:
    """Keras 2's ``model.predict_generator``, on stoker workers.

    Args:
        model: a Keras 3 model.
        generator: a Sequence/PyDataset, a generator, or a factory giving ``x`` or
            ``(x, ...)`` batches (see ``fit_generator``).
        steps: batches to predict (the first ones of a Sequence); default all;
            required for a generator.
        callbacks: Keras callbacks.
        max_queue_size: finished batches allowed to wait.
        workers: stoker workers.
        use_multiprocessing: processes instead of threads (Sequences only).
        verbose: 0 silent, 1 progress bar.

    Returns:
        The predictions, concatenated in batch order (as ``model.predict``).

    Raises:
        ConfigError: an argument that cannot be honoured; the message says the fix.
    """
    return _over_first_steps(
        model.predict,
        generator,
        steps,
        workers=workers,
        use_multiprocessing=use_multiprocessing,
        max_queue_size=max_queue_size,
        verbose=verbose,
        callbacks=callbacks,
    )


class GeneratorMethods:
    """``fit_generator``, ``evaluate_generator`` and ``predict_generator`` as
    methods, for a Keras 3 model class (see ``Sequential`` and ``Model``)."""

    def fit_generator(self, generator: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras 2's ``fit_generator`` (see ``stoker.adapters.keras.fit_generator``)."""
        return fit_generator(self, generator, *args, **kwargs)

    def evaluate_generator(self, generator: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras 2's ``evaluate_generator`` (see the function of that name)."""
        return evaluate_generator(self, generator, *args, **kwargs)

    def predict_generator(self, generator: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras 2's ``predict_generator`` (see the function of that name)."""
        return predict_generator(self, generator, *args, **kwargs)


@keras.saving.register_keras_serializable(package="stoker")
class Sequential(GeneratorMethods, keras.Sequential):
    """``keras.Sequential`` with Keras 2's ``*_generator`` methods."""


@keras.saving.register_keras_serializable(package="stoker")
class Model(GeneratorMethods, keras.Model):
    """``keras.Model`` (functional or subclassed) with the ``*_generator`` methods."""
