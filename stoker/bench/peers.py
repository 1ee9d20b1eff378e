"""The peers stoker is compared with, driven the way their own frameworks drive them.

- Keras ``PyDataset`` (``workers``, ``use_multiprocessing``, ``max_queue_size``) is
  iterated through Keras' own ``PyDatasetAdapter``, exactly as ``model.fit`` does:
  ``on_epoch_begin()``, the adapter's numpy iterator (its ``OrderedEnqueuer`` with a
  thread or process pool), ``on_epoch_end()``. With ``workers=1`` and threads Keras
  uses no enqueuer at all, so that row is Keras' serial path, as in ``fit``.
- torch ``DataLoader(source, batch_size=None, num_workers=W)`` on the same source
  object. torch has only process workers, so its rows are always ``process`` mode.
  ``prefetch_factor`` is ``ceil(Q / W) + 1`` so that its batches in flight
  (``prefetch_factor * W``) match stoker's bound of ``Q + W``. ``workers=0`` is
  torch's own default: batches are loaded in the training loop's process, no worker.

Both libraries are optional and imported only here, lazily; a missing one is reported
with the pip command, never raised.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Generator
from typing import Any

from stoker.bench.runners import (
    BATCH_TIMEOUT_S,
    Availability,
    Runner,
    Setting,
    fixed,
)

# Keras 3 picks its backend at import; torch is the one this project installs.
_KERAS_BACKEND_DEFAULT = "torch"


class KerasRunner(Runner):
    """Keras 3 ``PyDataset`` iterated by Keras' ``PyDatasetAdapter``."""

    name = "keras"

    def availability(self) -> Availability:
        os.environ.setdefault("KERAS_BACKEND", _KERAS_BACKEND_DEFAULT)
        try:
            import keras
            from keras.src.trainers.data_adapters import py_dataset_adapter  # noqa: F401
        except ImportError as exc:
            return Availability(
                self.name,
                False,
                None,
                f"Keras is not installed ({exc}); pip install 'stoker[keras]' to "
                "compare with keras.utils.PyDataset",
            )
        except Exception as exc:  # e.g. the chosen backend is missing
            return Availability(
                self.name,
                False,
                None,
                f"Keras failed to import ({type(exc).__name__}: {exc}); check "
                "KERAS_BACKEND (this comparison uses 'torch' by default)",
            )
        return Availability(self.name, True, keras.__version__, "")

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        from keras.src.trainers.data_adapters.py_dataset_adapter import (
            PyDatasetAdapter,
        )

        dataset = _pydataset_class()(
            source,
            workers=fixed(setting.workers, "workers"),
            use_multiprocessing=setting.mode == "process",
            max_queue_size=fixed(setting.queue, "max_queue_size"),
        )
        adapter = PyDatasetAdapter(dataset, shuffle=False)
        adapter.on_epoch_begin()
        try:
            yield from adapter.get_numpy_iterator()
        finally:
            adapter.on_epoch_end()


@functools.cache
def _pydataset_class() -> type:
    """A ``keras.utils.PyDataset`` that delegates to any batch source."""
    import keras

    class SourcePyDataset(keras.utils.PyDataset):
        def __init__(self, source: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.source = source

        def __len__(self) -> int:
            return len(self.source)

        def __getitem__(self, index: int) -> Any:
            return self.source[index]

    return SourcePyDataset


class TorchRunner(Runner):
    """torch ``DataLoader`` with ``batch_size=None`` (the source returns batches)."""

    name = "torch"
    modes = ("process",)

    def availability(self) -> Availability:
        try:
            import torch
            import torch.utils.data
        except ImportError as exc:
            return Availability(
                self.name,
                False,
                None,
                f"PyTorch is not installed ({exc}); pip install 'stoker[torch]' to "
                "compare with torch.utils.data.DataLoader",
            )
        return Availability(self.name, True, torch.__version__, "")

    def iterate(
        self, source: Any, setting: Setting, extras: dict[str, Any]
    ) -> Generator[Any, None, None]:
        from torch.utils.data import DataLoader

        workers = fixed(setting.workers, "workers")
        if workers == 0:  # torch's default: no worker process, no prefetching
            loader = DataLoader(source, batch_size=None)
        else:
            prefetch = math.ceil(fixed(setting.queue, "max_queue_size") / workers) + 1
            extras["prefetch_factor"] = prefetch
            loader = DataLoader(
                source,
                batch_size=None,
                num_workers=workers,
                prefetch_factor=prefetch,
                persistent_workers=False,
                timeout=BATCH_TIMEOUT_S,
            )
        it = iter(loader)
        try:
            yield from it
        finally:
            # Exhaustion already shut the workers down; after an early stop or an
            # error, do it now rather than whenever the iterator is collected.
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()


PEERS: dict[str, type[Runner]] = {"keras": KerasRunner, "torch": TorchRunner}
