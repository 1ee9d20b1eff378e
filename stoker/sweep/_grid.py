"""A sweep's grid: parsed from ``--grid NAME=V1,V2`` options, expanded into trials.

Rule: a value is read as JSON when it parses (``4`` is an int, ``false`` a bool,
``0.1`` a float, ``null`` None) and is a string otherwise (``adam``). Trials are the
cartesian product of the grid in the order the options were given, times
``repeat``; each has a key, ``workers=4,use_multiprocessing=true#2``, that names it
in the store and lets ``--resume`` find what already finished.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from stoker import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_grid(options: Sequence[str]) -> dict[str, list[Any]]:
    """``["workers=1,2", "mode=a,b"]`` as ``{"workers": [1, 2], "mode": ["a", "b"]}``.

    Raises:
        ConfigError: an option is not NAME=V1,V2,..., a name repeats, or a value
            repeats within one name.
    """
    grid: dict[str, list[Any]] = {}
    for option in options:
        name, sep, values = option.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name) or not values.strip():
            raise ConfigError(
                f"--grid {option!r}: use NAME=V1,V2,... such as --grid workers=1,2,4,8"
            )
        if name in grid:
            raise ConfigError(f"--grid {name} is given twice; list its values once")
        parsed = [_value(v.strip()) for v in values.split(",") if v.strip()]
        if len({json.dumps(v) for v in parsed}) != len(parsed):
            raise ConfigError(f"--grid {option!r}: a value is listed twice")
        grid[name] = parsed
    if not grid:
        raise ConfigError("a sweep needs at least one --grid NAME=V1,V2,...")
    return grid


def render(value: Any) -> str:
    """A value as it appears in keys and tables (JSON, strings unquoted)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of the command: a combination of the grid and a repeat number."""

    params: Mapping[str, Any]
    repeat: int  # from 1

    @property
    def combo(self) -> str:
        """The combination without the repeat: ``workers=4,mode=fast``."""
        return ",".join(f"{k}={render(v)}" for k, v in self.params.items())

    @property
    def key(self) -> str:
        """The trial's key in the store: the combination and ``#repeat``."""
        return f"{self.combo}#{self.repeat}"


def trials(grid: Mapping[str, Sequence[Any]], repeat: int = 1) -> list[Trial]:
    """Every trial of the grid, each combination ``repeat`` times, repeats last."""
    if repeat < 1:
        raise ConfigError(f"--repeat {repeat}: use 1 or more")
    names = list(grid)
    combos = [
        dict(zip(names, vs, strict=True)) for vs in itertools.product(*grid.values())
    ]
    return [Trial(c, r) for r in range(1, repeat + 1) for c in combos]
