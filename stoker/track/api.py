"""The tracker's API for stoker's own front ends: the dashboard, the CLI, sweeps.

``stoker.track`` exports what a training script needs (``track``, ``param``, the
queries); this module adds what the front ends read and edit: the runs page, one
run's charts and details, downsampled series, notes and tags, sweep records, and
the helpers they share. Every name here reads or writes through the store's one SQL
layer, so each works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

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
from stoker.track._registry import active_run
from stoker.track._rerun import RerunResult, rerun
from stoker.track._run import Run, track
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
    "RerunResult",
    "Run",
    "RunQuery",
    "SCHEMA_VERSION",
    "SPOOL_ENV",
    "STORE_ENV",
    "SWEEP_ENV",
    "Store",
    "TRIAL_ENV",
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
