"""Batches of numpy arrays become batches of torch tensors, structure kept.

Rule: a numpy array becomes a tensor that *shares its memory* (``torch.from_numpy``),
except where sharing would be wrong, and then it is copied once:

- a read-only array (``np.load(mmap_mode="r")``, ``np.broadcast_to``): torch has no
  read-only tensors, and writing to one would change the file or the source;
- negative strides (``a[::-1]``): torch cannot view them.

Arrays of strings, objects, dates and void records have no tensor type and stay numpy
arrays, as ``torch.utils.data.default_convert`` leaves them; numpy scalars become
0-d tensors; Python numbers, strings, ``None`` and tensors pass as they are.

Why sharing is safe with process workers: an array from the shared-memory ring keeps
its slot until the last view of it is garbage collected (``stoker.empty``'s ownership
rule), and a tensor from ``torch.from_numpy`` holds the array. A tensor the training
loop keeps stays valid for as long as it is kept; its slot returns to the ring after.

The structure is walked by stoker's one walker (``stoker._tree.map_structure``): tuples,
named tuples, lists and mappings keep their types, as collation keeps them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from stoker._tree import map_structure

# dtype kinds with no tensor type: bytes, str, object, void, datetime, timedelta
_NO_TENSOR_KINDS = frozenset("SUOVMm")


def _array_to_tensor(arr: np.ndarray) -> Any:
    if arr.dtype.kind in _NO_TENSOR_KINDS:
        return arr
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = np.array(arr)  # see the module docstring: sharing would be wrong
    return torch.from_numpy(arr)


def _leaf_to_tensor(leaf: Any) -> Any:
    if isinstance(leaf, np.ndarray):
        return _array_to_tensor(leaf)
    if isinstance(leaf, np.generic) and leaf.dtype.kind not in _NO_TENSOR_KINDS:
        return torch.as_tensor(leaf)
    return leaf


def to_tensors(batch: Any) -> Any:
    """The batch with every numeric numpy array as a tensor sharing its memory."""
    return map_structure(_leaf_to_tensor, batch)


def tensors_of(batch: Any) -> list[torch.Tensor]:
    """Every tensor in ``batch``, in walk order."""
    found: list[torch.Tensor] = []

    def keep(leaf: Any) -> Any:
        if isinstance(leaf, torch.Tensor):
            found.append(leaf)
        return leaf

    map_structure(keep, batch)
    return found
