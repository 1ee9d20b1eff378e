"""Experiment tracking: ``with stoker.track("mnist", params={...}) as run:``.

Local first: runs, params, metrics, loader statistics, code version and environment
go into an SQLite store (``.stoker/store.db`` under the working directory, or
``$STOKER_STORE``, or ``store=``), or a team's PostgreSQL store
(``postgresql://user:password@host/db``; docs/team.md), written by one background
thread per run so ``run.log`` costs the training loop a few microseconds. Read them
back with ``stoker runs`` or the functions here. See docs/tracking.md.

This module is callable: ``stoker.track(...)`` is :func:`track`, while
``stoker.track.Store`` and the rest stay reachable as attributes. Importing it needs
only the standard library; psutil is imported when a run starts, psycopg when a
PostgreSQL store is opened.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from stoker.track._edit import set_note, set_tags
from stoker.track._migrations import LATEST as SCHEMA_VERSION
from stoker.track._panels import loader_timeline, run_charts
from stoker.track._query import (
    compare_runs,
    delete_run,
    export_run,
    get_run,
    git_diff,
    jsonable,
    list_runs,
    metric_buckets,
)
from stoker.track._read import (
    MAX_POINTS,
    NOTE_TAG,
    RunQuery,
    open_readonly,
    run_detail,
    runs_page,
    series,
)
from stoker.track._rerun import RerunResult, rerun
from stoker.track._run import Run, active_run, track
from stoker.track._spool import SPOOL_ENV
from stoker.track._sqlite import DEFAULT_STORE, STORE_ENV, resolve_path
from stoker.track._store import Store
from stoker.track._sweeps import (
    PARAMS_ENV,
    SWEEP_ENV,
    TRIAL_ENV,
    get_sweep,
    param,
    record_sweep,
    record_trial,
    trial_run_id,
)
from stoker.track._sync import copy_runs, sync_spools
from stoker.track._url import mask

__all__ = [
    "DEFAULT_STORE",
    "MAX_POINTS",
    "NOTE_TAG",
    "PARAMS_ENV",
    "SCHEMA_VERSION",
    "SPOOL_ENV",
    "STORE_ENV",
    "SWEEP_ENV",
    "TRIAL_ENV",
    "RerunResult",
    "Run",
    "RunQuery",
    "Store",
    "active_run",
    "compare_runs",
    "copy_runs",
    "delete_run",
    "export_run",
    "get_run",
    "get_sweep",
    "git_diff",
    "jsonable",
    "list_runs",
    "loader_timeline",
    "mask",
    "metric_buckets",
    "open_readonly",
    "param",
    "record_sweep",
    "record_trial",
    "rerun",
    "resolve_path",
    "run_charts",
    "run_detail",
    "runs_page",
    "series",
    "set_note",
    "set_tags",
    "sync_spools",
    "track",
    "trial_run_id",
]


class _CallableModule(types.ModuleType):
    """Makes ``stoker.track(...)`` work while ``stoker.track`` stays a package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return track(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
