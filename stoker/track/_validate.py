"""What the tracker accepts as names, metric values, params and tags.

Checked on the caller's thread, before anything is queued, so a bad value raises
where it was logged and never reaches (or breaks) the writer thread:

- names: any ``str`` of 1 to :data:`MAX_NAME_CHARS` characters that UTF-8 can encode
  (spaces, slashes, quotes, emoji are fine), except the NUL character;
- metric values: ``int``, ``float``, ``bool`` or anything with ``__float__`` (numpy
  scalars, 0-d arrays, one-element tensors); strings and ``None`` raise
  ``TypeError``. NaN and infinities are kept: NaN is stored as NULL and read back as
  NaN, infinities as themselves;
- params: JSON values; anything else (a ``Path``, an object) is stored as its
  ``str()``, numpy scalars and arrays as numbers and lists. Params and tags longer
  than :data:`MAX_VALUE_CHARS` once encoded raise ``ValueError``.
"""

from __future__ import annotations

import json
import math
import operator
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_NAME_CHARS = 250
MAX_VALUE_CHARS = 65_536
# SQLite integers are signed 64-bit.
MAX_STEP = 2**63 - 1


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it is a usable metric, param or tag name; else raise.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: it is empty, too long, holds NUL or cannot be encoded.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} name {name!r} is a {type(name).__name__}; use a str")
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise ValueError(
            f"{what} name of {len(name)} characters: use 1 to {MAX_NAME_CHARS}"
        )
    if "\x00" in name:
        raise ValueError(f"{what} name {name!r} holds a NUL character; remove it")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} name {name!r} cannot be stored as UTF-8 ({e.reason}); it "
            "probably holds a lone surrogate from a mis-decoded byte string"
        ) from None
    return name


def to_float(name: str, value: Any) -> float:
    """``value`` as a float for metric ``name``; raises ``TypeError`` if it is none.

    Raises:
        TypeError: ``value`` is a string, None or has no numeric value.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"metric {name!r}: {value!r} is not a number; log numbers (log text as a "
            "tag with run.set_tags)"
        )
    try:
        return float(value)
    except OverflowError:  # an int beyond float range
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"metric {name!r}: {type(value).__name__} {value!r:.80} has no single "
            "numeric value; log a number, e.g. float(x) or x.mean()"
        ) from e


def to_step(step: Any) -> int:
    """``step`` as a whole number in SQLite's 64-bit range.

    Raises:
        TypeError: ``step`` is not a whole number (floats are refused, not rounded).
        ValueError: it does not fit in 64 bits.
    """
    try:
        value = operator.index(step)
    except TypeError:
        raise TypeError(
            f"step={step!r}: expected a whole number (the batch or epoch count)"
        ) from None
    if not -MAX_STEP <= value <= MAX_STEP:
        raise ValueError(f"step={value}: outside the 64-bit range SQLite stores")
    return value


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


def param_json(name: str, value: Any) -> str:
    """``value`` encoded as the JSON text stored for param ``name``.

    Raises:
        ValueError: the encoded value is longer than :data:`MAX_VALUE_CHARS`.
    """
    try:
        text = json.dumps(value, default=_jsonable, sort_keys=True)
    except (TypeError, ValueError):  # e.g. non-string keys, circular references
        text = json.dumps(str(value))
    return _check_size("param", name, text)


def tag_text(name: str, value: Any) -> str:
    """``value`` as the text stored for tag ``name`` (``str()`` of non-strings)."""
    return _check_size("tag", name, value if isinstance(value, str) else str(value))


def _check_size(what: str, name: str, text: str) -> str:
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(
            f"{what} {name!r} is {len(text):,} characters once encoded; the limit is "
            f"{MAX_VALUE_CHARS:,}. Record a path or a hash of large values instead."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} {name!r} cannot be stored as UTF-8 ({e.reason})"
        ) from None
    return text


def default_name() -> str:
    """A run's name when none is given: the script's name, else "run"."""
    arg0 = sys.argv[0] if sys.argv else ""
    stem = Path(arg0).stem if arg0 not in ("", "-c", "-m") else ""
    return stem or "run"


def not_running(*_: Any) -> None:
    """What ``run.log`` does outside a running run."""
    raise RuntimeError(
        "this run is not running: log inside `with stoker.track(...) as run:` "
        "(or between run.start() and run.end())"
    )


def encode(kind: str, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Checked ``(name, stored text)`` pairs of params or tags."""
    encode = param_json if kind == "param" else tag_text
    return [(check_name(k, kind), encode(k, x)) for k, x in values.items()]
