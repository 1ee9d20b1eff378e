"""The one walker of a batch's structure: sizes, collation, fingerprints.

A batch is an array, a number, or a container of batches: a tuple (named tuples
included), a list, or a mapping (``dict``, ``OrderedDict``, user subclasses). Every
part of stoker that looks inside a batch goes through here, so the rules are the
same everywhere:

- containers keep their type. A named tuple stays that named tuple, a ``dict``
  subclass stays that subclass (mutable mappings and sequences are copied with
  ``copy.copy`` and refilled, which keeps extra attributes and a ``defaultdict``'s
  factory; torch's ``default_collate`` does the same);
- a mapping's fields are visited in its own order; fingerprints sort keys, so two
  equal dicts built in a different order have the same fingerprint;
- anything else (strings, ``None``, objects) is a leaf.

Layer 0 (stdlib and numpy), so the engine, ``stoker.testing`` and ``stoker.bench``
share it without reaching into each other.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence
from typing import Any

import numpy as np

_NUMBERS = (np.ndarray, int, float, complex, np.generic)


def is_namedtuple(value: Any) -> bool:
    """Whether ``value`` is an instance of a ``collections.namedtuple`` class."""
    return isinstance(value, tuple) and hasattr(value, "_fields")


def map_structure(fn: Callable[[Any], Any], batch: Any) -> Any:
    """``batch`` with every leaf replaced by ``fn(leaf)``, containers' types kept."""
    if isinstance(batch, Mapping):
        return _rebuild_mapping(
            batch, {k: map_structure(fn, v) for k, v in batch.items()}
        )
    if isinstance(batch, (tuple, list)):
        return _rebuild_sequence(batch, [map_structure(fn, v) for v in batch])
    return fn(batch)


def leaves(batch: Any) -> list[Any]:
    """Every leaf of ``batch``, in structure order."""
    out: list[Any] = []
    map_structure(out.append, batch)
    return out


def nbytes(batch: Any) -> int:
    """Bytes of array data in a batch: numpy arrays, and tensors with ``nbytes``."""
    size = getattr(batch, "nbytes", None)
    if isinstance(size, int) and not isinstance(batch, (tuple, list, Mapping)):
        return size
    if isinstance(batch, Mapping):
        return sum(nbytes(v) for v in batch.values())
    if isinstance(batch, (tuple, list)):
        return sum(nbytes(v) for v in batch)
    return 0


def collate(samples: list[Any], empty: Callable[..., np.ndarray] = np.empty) -> Any:
    """Stack a list of samples into one batch, keeping their structure.

    Arrays and numbers are stacked with ``numpy.stack`` along a new first axis, into
    an array from ``empty(shape, dtype)`` (a process worker passes ``stoker.empty``,
    so the batch is stacked straight into shared memory: one copy, not two); tuples,
    lists and mappings are collated field by field and keep their type; anything else
    (strings, objects) becomes a list of the samples' values.

    Raises:
        ValueError: the samples do not share one structure (a sequence of another
            length, a mapping without a key the first sample has); the message
            names the first sample that differs.
    """
    first = samples[0]
    if isinstance(first, _NUMBERS):
        if isinstance(first, bool):
            return np.asarray(samples)
        arrays = [np.asarray(s) for s in samples]
        dtype = np.result_type(*arrays)
        shape = arrays[0].shape
        if dtype.hasobject or any(a.shape != shape for a in arrays):
            return np.stack(arrays)  # numpy's own error names the shapes
        return np.stack(arrays, out=empty((len(arrays), *shape), dtype))
    if isinstance(first, Mapping):
        for i, s in enumerate(samples):
            missing = [k for k in first if not isinstance(s, Mapping) or k not in s]
            if missing:
                raise ValueError(
                    f"sample {i} of the batch has no field {missing[0]!r} that sample "
                    "0 has: every sample must have the same keys"
                )
        fields = {k: collate([s[k] for s in samples], empty) for k in first}
        return _rebuild_mapping(first, fields)
    if isinstance(first, (tuple, list)):
        for i, s in enumerate(samples):
            if len(s) != len(first):
                raise ValueError(
                    f"sample {i} of the batch has {len(s)} fields and sample 0 has "
                    f"{len(first)}: every sample must have the same structure"
                )
        columns = [collate(list(col), empty) for col in zip(*samples, strict=True)]
        return _rebuild_sequence(first, columns)
    return list(samples)


def fingerprint(batch: Any) -> bytes:
    """Bytes that differ whenever two batches differ in structure, dtype or content.

    Framework tensors are compared through ``.numpy()``.
    """
    if isinstance(batch, np.ndarray):
        if batch.dtype.hasobject:
            return repr(batch.tolist()).encode()
        head = f"{batch.dtype.str}{batch.shape}".encode()
        return head + np.ascontiguousarray(batch).tobytes()
    if isinstance(batch, Mapping):
        parts = (
            repr(k).encode() + b":" + fingerprint(batch[k])
            for k in sorted(batch, key=repr)
        )
        return b"{" + b",".join(parts) + b"}"
    if isinstance(batch, (tuple, list)):
        return b"(" + b",".join(fingerprint(b) for b in batch) + b")"
    if hasattr(batch, "numpy") and callable(batch.numpy):  # torch / jax tensors
        return fingerprint(np.asarray(batch.numpy()))
    return repr(batch).encode()


def _rebuild_mapping(like: Mapping[Any, Any], fields: dict[Any, Any]) -> Any:
    if type(like) is dict:
        return fields
    if isinstance(like, MutableMapping):
        try:
            clone = copy.copy(like)
            clone.update(fields)
            return clone
        except Exception:  # an odd mapping that cannot be copied: fall through
            pass
    try:
        return type(like)(fields)  # type: ignore[call-arg]
    except Exception:
        return fields


def _rebuild_sequence(like: tuple[Any, ...] | list[Any], items: list[Any]) -> Any:
    kind = type(like)
    if kind is tuple or kind is list:
        return kind(items)
    if is_namedtuple(like):
        return kind(*items)
    if isinstance(like, MutableSequence):
        try:
            clone = copy.copy(like)
            clone[:] = items
            return clone
        except Exception:
            pass
    try:
        return kind(items)
    except Exception:
        return list(items) if isinstance(like, list) else tuple(items)
