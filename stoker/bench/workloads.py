"""The sources ``stoker bench`` measures: built-in workloads and the user's own.

Each built-in workload stands for one way an input pipeline spends its time:

- ``latency``: waits (a sleep, as a network or disk read does) and returns an
  MNIST-shaped batch; threads should scale almost linearly here.
- ``cpu``: pure-Python preprocessing that holds the GIL; only processes scale.
- ``big``: large uint8 image batches; what it costs to move a batch between workers.
- ``tiny``: a trivial batch; the loader's own overhead per batch.
- ``files``: decodes JPEG/PNG files written once to a cache folder (see
  :mod:`stoker.bench.files`).

Every source is a module-level class, so process workers can pickle it. A user
workload is ``"module:callable"``; the callable returns a source (``__len__`` and
``__getitem__``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from stoker import ConfigError, StokerError
from stoker.bench.files import FilesSource

# The latency workload's default: 20 ms per batch is a slow remote read or a small
# decode; at 64 batches one serial pass takes about 1.3 s.
DEFAULT_LATENCY_S = 0.02
# Python-level operations per batch of the cpu workload: about 10 ms on one core.
_CPU_OPS = 60_000


class WorkloadError(StokerError):
    """The user's workload failed: the callable raised, or ``source[i]`` raised."""


class LatencySource:
    """Sleeps ``latency`` seconds, then returns MNIST-shaped ``(x, y)``.

    ``x`` is float32 ``[128, 28, 28, 1]``, ``y`` int64 ``[128]``.
    """

    def __init__(self, length: int, latency: float = DEFAULT_LATENCY_S) -> None:
        self.length = length
        self.latency = latency

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        time.sleep(self.latency)
        x = np.full((128, 28, 28, 1), index % 256 / 255.0, dtype=np.float32)
        y = np.arange(128, dtype=np.int64) % 10
        return x, y


class CpuSource:
    """Pure-Python preprocessing: a loop that holds the GIL, then a small array."""

    def __init__(self, length: int, ops: int = _CPU_OPS) -> None:
        self.length = length
        self.ops = ops

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        # A linear congruential walk: Python integer arithmetic, no C call that
        # could release the GIL, like tokenising or per-pixel augmentation in Python.
        acc = index + 1
        values = []
        for k in range(self.ops):
            acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
            if k % 64 == 0:
                values.append(acc / 0x7FFFFFFF)
        x = np.asarray(values, dtype=np.float32)
        return x, np.asarray([index], dtype=np.int64)


class BigSource:
    """Large image batches: uint8 ``[64, 224, 224, 3]`` (9.6 MB) and int64 labels."""

    shape = (64, 224, 224, 3)

    def __init__(self, length: int) -> None:
        self.length = length
        self._base: np.ndarray | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._base is None:  # built lazily, in the worker that needs it
            size = int(np.prod(self.shape))
            self._base = np.resize(np.arange(256, dtype=np.uint8), size)
        # A fresh 9.6 MB array per batch: one pass over memory, like a decode's output.
        x = np.add(self._base, np.uint8(index % 256), dtype=np.uint8)
        return x.reshape(self.shape), np.full(self.shape[0], index, dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        return {"length": self.length, "_base": None}  # never ship the 9.6 MB base


class TinySource:
    """A one-element batch: what remains is the loader's overhead per batch."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return np.asarray([index], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named source to benchmark.

    Attributes:
        name: ``latency``, ``cpu``, ``big``, ``tiny``, ``files`` or ``module:callable``.
        source: the object with ``__len__`` and ``__getitem__`` that loaders run.
        description: one line for the report.
        params: the workload's settings, JSON-able, recorded with the results.
    """

    name: str
    source: Any
    description: str
    params: dict[str, Any]


# name -> (default batches per run, description); each sized so one run lasts
# 0.2-1.3 s on one core: long enough to dwarf starting workers, short enough to sweep.
BUILTIN: dict[str, tuple[int, str]] = {
    "latency": (64, "sleeps per batch, MNIST-shaped float32 [128,28,28,1]"),
    "cpu": (48, "pure-Python preprocessing per batch (holds the GIL)"),
    "big": (128, "uint8 image batches [64,224,224,3], 9.6 MB each"),
    "tiny": (20000, "a one-element batch: the loader's overhead"),
    "files": (64, "decodes 32 JPEG files 224x224 per batch from a cache folder"),
}


def make_workload(
    spec: str, *, batches: int | None = None, latency: float | None = None
) -> Workload:
    """Build the workload named by ``spec``.

    Args:
        spec: a built-in name (see ``BUILTIN``) or ``"module:callable"``, where the
            callable takes no arguments and returns a source.
        batches: batches per run; None takes the built-in default, or the whole
            user source.
        latency: seconds per batch of the ``latency`` workload.

    Returns:
        The workload, its source ready to run.

    Raises:
        ConfigError: unknown name, bad numbers, a module or callable that cannot be
            found, or a callable that does not return a source.
        WorkloadError: the user's callable raised.
    """
    if batches is not None and (not isinstance(batches, int) or batches < 1):
        raise ConfigError(f"batches={batches!r}: expected a whole number >= 1")
    if latency is not None and spec != "latency":
        raise ConfigError(
            f"latency applies only to the 'latency' workload, not {spec!r}"
        )
    if latency is not None and not latency >= 0:
        raise ConfigError(f"latency={latency!r}: expected seconds >= 0")
    if ":" in spec:
        return _user_workload(spec, batches)
    if spec not in BUILTIN:
        raise ConfigError(
            f"unknown workload {spec!r}: use one of {', '.join(BUILTIN)} or "
            "'module:callable' (a callable returning a source)"
        )
    default_batches, description = BUILTIN[spec]
    n = batches or default_batches
    params: dict[str, Any] = {"batches": n}
    source: Any
    if spec == "latency":
        lat = DEFAULT_LATENCY_S if latency is None else latency
        source = LatencySource(n, lat)
        params["latency_s"] = lat
        description = f"sleeps {lat * 1e3:g} ms per batch, MNIST-shaped float32"
    elif spec == "cpu":
        source = CpuSource(n)
        params["ops"] = source.ops
    elif spec == "big":
        source = BigSource(n)
    elif spec == "tiny":
        source = TinySource(n)
    else:
        source = FilesSource(n)
        params.update(folder=str(source.folder), files=source.files)
    return Workload(spec, source, description, params)


def _user_workload(spec: str, batches: int | None) -> Workload:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"workload {spec!r}: expected 'module:callable', e.g. mydata:make_source"
        )
    factory = _import_callable(module_name, attr)
    try:
        source = factory()
    except Exception as exc:
        raise WorkloadError(
            f"workload {spec}: calling {attr}() raised {type(exc).__name__}: {exc}"
        ) from exc
    length = _check_source(spec, source)
    if batches is not None and batches < length:
        source = Limited(source, batches)
        length = batches
    doc = (getattr(factory, "__doc__", None) or "").strip().splitlines()
    description = doc[0] if doc else f"user source {type(source).__name__}"
    return Workload(spec, source, description, {"batches": length})


def _import_callable(module_name: str, attr: str) -> Callable[[], Any]:
    # `stoker` is a console script, so the current folder is not on sys.path as it is
    # for `python -m`; users expect `stoker bench mymodule:f` to find ./mymodule.py.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} ({exc}); run from the folder "
            "that holds it or add that folder to PYTHONPATH"
        ) from exc
    except Exception as exc:
        raise WorkloadError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise ConfigError(
            f"{module_name}:{attr} is a {type(factory).__name__}, not a callable; "
            "give a function that returns a source"
        )
    return factory  # type: ignore[no-any-return]


def _check_source(spec: str, source: Any) -> int:
    if not hasattr(source, "__getitem__") or not hasattr(source, "__len__"):
        raise ConfigError(
            f"workload {spec} returned a {type(source).__name__}, not a source: "
            "it must have __len__ and __getitem__(i) returning batch i"
        )
    try:
        length = len(source)
    except Exception as exc:
        raise WorkloadError(
            f"workload {spec}: len(source) raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(length, int) or length < 1:
        raise ConfigError(f"workload {spec}: len(source) is {length!r}; expected >= 1")
    return length


class Limited:
    """The first ``length`` batches of a source (``--batches`` on a user workload)."""

    def __init__(self, source: Any, length: int) -> None:
        self.source = source
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.source[index]
