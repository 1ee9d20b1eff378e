"""Experiment tracking: ``with stoker.track("mnist", params={...}) as run:``.

Local first: runs, params, metrics, loader statistics, code version and environment
go into an SQLite store (``.stoker/store.db`` under the working directory, or
``$STOKER_STORE``, or ``store=``), or a team's PostgreSQL store
(``postgresql://user:password@host/db``; docs/team.md), written by one background
thread per run so ``run.log`` costs the training loop a few microseconds. Read them
back with ``stoker runs`` or the functions here. See docs/tracking.md.

This module is callable: ``stoker.track(...)`` is :func:`track`. Its names are loaded
when first used, so ``import stoker`` pays for none of the tracker (its SQLite,
subprocess and git machinery) until a run starts or a query runs. What the
dashboard, the CLI and sweeps use beyond these is in :mod:`stoker.track.api`.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from typing import Any

if typing.TYPE_CHECKING:  # what type checkers see; at run time each loads on first use
    from stoker.track._query import (
        compare_runs,
        delete_run,
        export_run,
        get_run,
        list_runs,
    )
    from stoker.track._registry import active_run
    from stoker.track._rerun import RerunResult, rerun
    from stoker.track._run import Run, track
    from stoker.track._store import Store
    from stoker.track._sweeps import param
    from stoker.track._sync import copy_runs, sync_spools
    from stoker.track._url import DEFAULT_STORE, STORE_ENV

# public name -> the private module that defines it (imported on first use)
_NAMES = {
    "DEFAULT_STORE": "_url",
    "STORE_ENV": "_url",
    "RerunResult": "_rerun",
    "Run": "_run",
    "Store": "_store",
    "active_run": "_registry",
    "compare_runs": "_query",
    "copy_runs": "_sync",
    "delete_run": "_query",
    "export_run": "_query",
    "get_run": "_query",
    "list_runs": "_query",
    "param": "_sweeps",
    "rerun": "_rerun",
    "sync_spools": "_sync",
    "track": "_run",
}

__all__ = [
    "DEFAULT_STORE",
    "RerunResult",
    "Run",
    "STORE_ENV",
    "Store",
    "active_run",
    "compare_runs",
    "copy_runs",
    "delete_run",
    "export_run",
    "get_run",
    "list_runs",
    "param",
    "rerun",
    "sync_spools",
    "track",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'stoker.track' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"stoker.track.{module}"), name)
    globals()[name] = value  # later lookups find it at once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))


class _CallableModule(types.ModuleType):
    """Makes ``stoker.track(...)`` work while ``stoker.track`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return __getattr__("track")(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
