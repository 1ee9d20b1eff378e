"""Pinning and the host-to-device copy of a batch, run on the prefetch thread.

Rule: the copy of batch ``k+1`` must overlap the step on batch ``k``, and the step
must never read a batch before its copy has landed.

- Pinned (page-locked) host memory is what lets a CUDA copy run asynchronously
  (``non_blocking=True``); pinning needs an accelerator, so without one
  ``pin_memory=True`` is a no-op (``TorchLoader.pins`` says which) instead of the
  error ``Tensor.pin_memory()`` raises.
- On CUDA the copy is issued on a side stream owned by the stage, and an event is
  recorded after it. The consumer makes its current stream wait for that event
  before it uses the batch (a wait on the GPU, not on the host), and marks every
  tensor as used by its stream (``record_stream``) so that the caching allocator
  does not hand the memory out again while the step still reads it. This is the
  recipe of NVIDIA's Apex ``data_prefetcher`` and of ``torch.cuda.Stream``'s docs.
- On any other device the copy is a plain ``.to(device)``: it completes before the
  batch is queued, so there is nothing to wait for.
"""

from __future__ import annotations

from typing import Any

import torch

from stoker._tree import map_structure
from stoker.adapters._torch_tensors import tensors_of, to_tensors


def can_pin(device: torch.device | None) -> bool:
    """Whether pinning host memory means anything for copies to ``device``."""
    if device is not None and device.type != "cuda":
        return False
    return bool(torch.cuda.is_available())


class Transfer:
    """What the stage does to each batch, and what the consumer does after.

    Args:
        device: where tensors go (None: they stay on the host).
        pin: pin host memory first (only where ``can_pin``).
    """

    def __init__(self, device: torch.device | None, pin: bool) -> None:
        self.device = device
        self.pin = pin
        self.cuda = device is not None and device.type == "cuda"
        self._stream: Any = None
        if self.cuda:
            self._stream = torch.cuda.Stream(device)

    def __call__(self, batch: Any) -> tuple[Any, Any]:
        """On the stage thread: tensors, pinned, copied; returns (batch, event)."""
        batch = to_tensors(batch)
        if self.pin:
            batch = map_structure(_pinned, batch)
        if self.device is None:
            return batch, None
        if not self.cuda:
            return map_structure(lambda t: _moved(t, self.device), batch), None
        with torch.cuda.stream(self._stream):
            moved = map_structure(lambda t: _moved(t, self.device), batch)
            event = torch.cuda.Event()
            event.record(self._stream)
        return moved, event

    def finish(self, batch: Any, event: Any) -> Any:
        """On the consumer's thread: wait (on the GPU) for the copy to land."""
        if event is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            for tensor in tensors_of(batch):
                tensor.record_stream(current)
        return batch


def _pinned(leaf: Any) -> Any:
    return leaf.pin_memory() if isinstance(leaf, torch.Tensor) else leaf


def _moved(leaf: Any, device: torch.device | None) -> Any:
    if isinstance(leaf, torch.Tensor):
        return leaf.to(device, non_blocking=True)
    return leaf
