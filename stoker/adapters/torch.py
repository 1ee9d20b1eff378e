"""stoker for PyTorch: a ``stoker.Loader`` that hands out torch tensors.

``TorchLoader(loader, device=None, pin_memory=False, prefetch=2)`` is a drop-in for
the ``torch.utils.data.DataLoader`` a training loop iterates: ``len()``, one epoch
per ``for``, ``set_epoch(e)``, ``state_dict()``/``load_state_dict()``, and batches
with their structure kept (tuples, named tuples, lists, dicts) whose numpy arrays are
tensors. The loader's workers (threads or processes) compute the batches; this module
only converts and moves them.

Two paths, by the options:

- **Direct** (no ``device``, no ``pin_memory``): each batch is converted on the
  training thread with ``torch.from_numpy``: no copy, also for arrays in the process
  workers' shared memory (``_torch_tensors`` states when a copy is made instead, and
  why a kept tensor stays valid).
- **Stage** (``device=...`` or ``pin_memory=True``): a background thread converts,
  pins and copies the next ``prefetch`` batches with ``non_blocking=True`` while the
  step runs, on a CUDA side stream where the device is CUDA (``_torch_device``); the
  thread's rules (bounded, never hangs, errors keep their type) are ``_prefetch``'s.

Resuming: ``state_dict()`` covers the batches the loop has *taken*, never those the
stage holds ahead, so a checkpoint taken inside the loop resumes at the next batch.

Importing this module without torch raises an ``ImportError`` that names
``pip install 'stoker[torch]'``.
"""

from __future__ import annotations

try:
    import torch
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if exc.name != "torch":
        raise
    raise ImportError(
        "stoker.adapters.torch needs PyTorch: pip install 'stoker[torch]'"
    ) from exc

from collections.abc import Iterator
from typing import Any

import stoker
from stoker.adapters._staged import StagedEpochs, StagedLoader
from stoker.adapters._torch_device import Transfer, can_pin
from stoker.adapters._torch_tensors import to_tensors


def _device(device: Any) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise stoker.ConfigError(
            f"device={device!r} is not a torch device ({exc}); give e.g. 'cuda', "
            "'cuda:1', 'cpu' or a torch.device"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise stoker.ConfigError(
            f"device={device!r} but torch finds no CUDA device "
            "(torch.cuda.is_available() is False): pass device=None or 'cpu' here"
        )
    return dev


class TorchLoader(StagedLoader):
    """A ``stoker.Loader`` as a DataLoader-like iterable of torch tensors.

    Args:
        loader: the ``stoker.Loader`` to iterate; ``close()`` closes it too (and so
            does ``with TorchLoader(...)``).
        device: move every tensor there (``"cuda"``, ``"cuda:1"``, a
            ``torch.device``) on a background stage; None keeps them on the host.
        pin_memory: pin host memory before the copy (as ``DataLoader``'s option);
            a no-op without CUDA (see ``pins``).
        prefetch: batches the background stage keeps ready ahead of the step
            (>= 1); unused on the direct path, where the loader's own queue
            (``max_queue_size``) is the only one.

    Raises:
        ConfigError: ``loader`` is not a ``stoker.Loader``, ``device`` is unknown or
            not present, or ``prefetch`` is not a whole number >= 1.
    """

    def __init__(
        self,
        loader: stoker.Loader,
        device: Any = None,
        pin_memory: bool = False,
        prefetch: int = 2,
    ) -> None:
        if not isinstance(loader, stoker.Loader):
            raise stoker.ConfigError(
                f"TorchLoader takes a stoker.Loader, got {type(loader).__name__}: wrap "
                "the source first, e.g. TorchLoader(stoker.Loader(dataset, workers=8))"
            )
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise stoker.ConfigError(
                f"prefetch={prefetch!r}: give the number of batches to keep ready "
                "ahead of the step, a whole number >= 1 (2 is usual)"
            )
        self.loader = loader
        self.device = _device(device)
        self.pin_memory = bool(pin_memory)
        self.prefetch = prefetch
        transfer = Transfer(self.device, self.pins)
        self._staged = StagedEpochs(
            loader, transfer, prefetch, "torch", finish=transfer.finish
        )

    # -- DataLoader-like surface ----------------------------------------------
    @property
    def pins(self) -> bool:
        """Whether batches are pinned: ``pin_memory`` and a CUDA device exists."""
        return self.pin_memory and can_pin(self.device)

    @property
    def staged(self) -> bool:
        """Whether batches go through the background stage (device or pinning)."""
        return self.device is not None or self.pin_memory

    @property
    def dataset(self) -> Any:
        """The loader's source (``DataLoader.dataset``)."""
        return self.loader.source

    @property
    def batch_size(self) -> int | None:
        """The loader's ``batch_size`` (None when the source gives whole batches)."""
        return self.loader.options.batch_size

    def __iter__(self) -> Iterator[Any]:
        """One epoch of the loader, as tensors. A new pass ends a paused one."""
        if self.staged:
            return self._staged.start()
        self._staged.end()
        return self._direct(iter(self.loader))  # raises LoaderClosed after close()

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (its shuffle order, its seeds).

        ``DistributedSampler``'s habit: calling it with the epoch the loader is at
        anyway (``loader.epoch``) changes nothing, so a loop that calls it every
        epoch, or after a resume, keeps its place.

        Raises:
            ConfigError: ``epoch`` is not a whole number >= 0, or a pass is running.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise stoker.ConfigError(f"set_epoch({epoch!r}): give a whole number >= 0")
        if self._staged.live() is not None:
            raise stoker.ConfigError(
                "set_epoch() during a pass: call it before the `for` loop"
            )
        if epoch == self.loader.epoch:
            return
        state = self.loader.state_dict()
        state.update(epoch=epoch, position=0, delivered_after=[])
        self.loader.load_state_dict(state)

    def __repr__(self) -> str:
        where = f"device={self.device}" if self.device is not None else "host"
        return (
            f"<stoker TorchLoader {len(self)} batches, {where}, "
            f"pin_memory={self.pin_memory} (pins: {self.pins}), "
            f"prefetch={self.prefetch}, over {self.loader!r}>"
        )

    # -- internals ---------------------------------------------------------------
    def _direct(self, batches: Iterator[Any]) -> Iterator[Any]:
        try:
            for batch in batches:
                yield to_tensors(batch)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # a `break` in the loop ends the loader's epoch at once


__all__ = ["TorchLoader", "to_tensors"]
