"""Keeping the source in process workers in step with the consumer's, per epoch.

Workers get a copy of the source once, when they start. A Keras ``Sequence`` that
reshuffles ``self.indices`` in ``on_epoch_end`` changes only the consumer's copy, so
before each epoch the backend sends the workers what changed. Resending the whole
source would copy every in-memory array into every worker each epoch (and undo
``fork``'s copy-on-write sharing), so the unit is the attribute:

* each attribute of ``vars(source)`` has a digest: for a numpy array, CRC-32 and
  Adler-32 of its bytes (about 2 GB/s); for anything else, of its pickle;
* at the epoch boundary the digests are recomputed; changed attributes are pickled
  once and sent to every worker, which sets them on its copy; removed ones are
  deleted there too.

So an in-place ``numpy.random.shuffle(self.indices)`` crosses (its bytes changed),
a 1 GB ``self.x`` that did not change costs a checksum (about 0.5 s per GB per
epoch), not a copy; a read-only array (``x.flags.writeable = False``, or
``numpy.load(..., mmap_mode="r")``) cannot change in place and costs nothing.

A source without ``__dict__`` (a list, an array, a class with ``__slots__``) has no
attributes to compare; it is sent whole again when its length changed (a list that
grew between epochs), and otherwise kept. An attribute that cannot be pickled is
compared by identity and can only cross if it is replaced by something picklable.
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

import numpy as np

from stoker._engine.pickling import culprit, describe
from stoker._errors import SerializationError

Digest = tuple[Any, ...]


def _digest(value: Any) -> Digest:
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        if not value.flags.writeable:  # cannot change in place: identity suffices
            return ("readonly", id(value), value.shape, value.dtype.str)
        data = np.ascontiguousarray(value).data.cast("B")
        return (
            "array",
            value.shape,
            value.dtype.str,
            zlib.crc32(data),
            zlib.adler32(data),
        )
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return ("identity", id(value))
    return ("pickle", len(blob), zlib.crc32(blob), zlib.adler32(blob))


def _attributes(source: Any) -> dict[str, Any] | None:
    state = getattr(source, "__dict__", None)
    return state if isinstance(state, dict) else None


def _length(source: Any) -> int | None:
    try:
        return len(source)
    except Exception:
        return None


class SourceSync:
    """Digests of the source's attributes as the workers last saw them."""

    def __init__(self, source: Any) -> None:
        attrs = _attributes(source)
        self._digests = (
            None if attrs is None else {k: _digest(v) for k, v in attrs.items()}
        )
        self._length = _length(source)

    def changes(self, source: Any) -> bytes | None:
        """The pickled update for the workers, or None when nothing changed.

        Raises:
            SerializationError: a changed attribute cannot be pickled.
        """
        attrs = _attributes(source)
        if attrs is None or self._digests is None:
            length = _length(source)
            if length == self._length:
                return None
            self._length = length
            return self._dump(("replace", source), {"source": source})
        digests = {k: _digest(v) for k, v in attrs.items()}
        changed = {k: v for k, v in attrs.items() if self._digests.get(k) != digests[k]}
        removed = [k for k in self._digests if k not in digests]
        if not changed and not removed:
            return None
        payload = self._dump(("update", changed, removed), changed)
        self._digests = digests
        return payload

    @staticmethod
    def _dump(update: tuple[Any, ...], parts: dict[str, Any]) -> bytes:
        try:
            return pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            bad = [k for k in parts if culprit(parts[k], f"source.{k}")]
            what = describe(parts[bad[0]], f"source.{bad[0]}") if bad else str(exc)
            raise SerializationError(
                f"the source changed between epochs but {what}, so process workers "
                "cannot be given the new value: keep that attribute picklable, or "
                "create it lazily inside __getitem__"
            ) from exc


def apply(source: Any, payload: bytes) -> Any:
    """Worker side: the source with the update applied (the same object, or a new
    one when the update replaces it whole)."""
    update = pickle.loads(payload)
    if update[0] == "replace":
        return update[1]
    _, changed, removed = update
    attrs = source.__dict__
    attrs.update(changed)
    for key in removed:
        attrs.pop(key, None)
    return source
