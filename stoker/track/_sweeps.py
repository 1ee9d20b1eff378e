"""A sweep's record in the store: its grid, and what each trial did.

Rule: the sweep launcher (``stoker.sweep``) writes a sweep and its trials here; each
trial's training run is an ordinary tracked run, tagged ``sweep`` and
``sweep_trial`` (the trial's key). A trial keeps its own status, exit code, error and
log tail, so a trial that died before it could track anything is still explained.

The environment variables below carry a trial's identity and params from the
launcher into the trial's process, where :func:`stoker.param` and
:func:`stoker.track` read them. Outside a sweep they are unset and both behave as
if there were no sweep.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from stoker._errors import StoreError
from stoker.track._store import Store

SWEEP_ENV = "STOKER_SWEEP"
TRIAL_ENV = "STOKER_SWEEP_TRIAL"
PARAMS_ENV = "STOKER_PARAMS"
StorePath = str | os.PathLike[str] | None
_MISSING = object()


@functools.lru_cache(maxsize=8)
def _decode(text: str) -> dict[str, Any]:
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise ValueError(
            f"${PARAMS_ENV} must hold a JSON object of parameters, not {text[:200]!r}"
        )
    return values


def sweep_params() -> dict[str, Any]:
    """This process's sweep params (``$STOKER_PARAMS``), or {} outside a sweep."""
    text = os.environ.get(PARAMS_ENV)
    return dict(_decode(text)) if text else {}


def sweep_tags() -> dict[str, str]:
    """The ``sweep`` and ``sweep_trial`` tags of a run started by a sweep, or {}."""
    sweep, trial = os.environ.get(SWEEP_ENV), os.environ.get(TRIAL_ENV)
    return {"sweep": sweep, "sweep_trial": trial or ""} if sweep else {}


def param(name: str, default: Any = None) -> Any:
    """A sweep parameter: its value in this trial, or ``default`` outside a sweep.

    ``stoker sweep --grid workers=1,2,4 -- python train.py`` runs ``train.py`` once
    per value; inside it, ``stoker.param("workers", default=1)`` gives that trial's
    value, and the script still runs unchanged on its own. A value is converted to
    the type of ``default`` when that is a bool, int, float or str.

    Args:
        name: the parameter's name, as given to ``--grid``.
        default: the value outside a sweep, or when the sweep has no such param.

    Raises:
        ValueError: the value cannot be converted to the default's type.
    """
    value = sweep_params().get(name, _MISSING)
    if value is _MISSING:
        return default
    # bool is an int, but True is no worker count: only an exact type match passes.
    if default is None or type(value) is type(default):
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if value in (0, 1):
                return bool(value)
            raise ValueError
        if isinstance(default, (int, float, str)):
            return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"sweep param {name}={value!r} cannot be read as "
            f"{type(default).__name__} (its default is {default!r}); fix the --grid "
            "values or the default"
        ) from None
    return value


def record_sweep(
    name: str,
    *,
    command: list[str] | None = None,
    grid: Mapping[str, list[Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    status: str = "running",
    store: StorePath = None,
) -> None:
    """Create a sweep, or set the status of one (``running`` again when resumed).

    The command, grid and options are kept from the sweep's creation.
    """
    ended = None if status == "running" else time.time()
    with Store.open(store, create=True) as st, st._transaction() as db:
        db.execute(
            "INSERT INTO sweeps (name, status, created_at, ended_at, command, grid, "
            "options) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
            "SET status = excluded.status, ended_at = excluded.ended_at",
            (
                name,
                status,
                time.time(),
                ended,
                json.dumps(command or []),
                json.dumps(dict(grid or {})),
                json.dumps(dict(options or {})),
            ),
        )


def record_trial(
    sweep: str,
    trial: str,
    params: Mapping[str, Any],
    store: StorePath = None,
    **cols: Any,
) -> None:
    """Create or update one trial (columns: status, run_id, started_at, ended_at,
    returncode, error, log_tail)."""
    names = ["params", *cols]
    values = [json.dumps(dict(params)), *cols.values()]
    sets = ", ".join(f"{k} = excluded.{k}" for k in names)
    marks = ", ".join("?" * (len(names) + 2))
    with Store.open(store, create=True) as st, st._transaction() as db:
        db.execute(
            f"INSERT INTO sweep_trials (sweep, trial, {', '.join(names)}) "
            f"VALUES ({marks}) ON CONFLICT (sweep, trial) DO UPDATE SET {sets}",
            (sweep, trial, *values),
        )


def trial_run_id(sweep: str, trial: str, store: StorePath = None) -> int | None:
    """The id of the (latest) run a sweep's trial tracked, or None."""
    with Store.open(store) as st:
        rows = st._rows(
            "SELECT a.run_id FROM tags a JOIN tags b ON b.run_id = a.run_id "
            "WHERE a.key = 'sweep' AND a.value = ? AND b.key = 'sweep_trial' "
            "AND b.value = ? ORDER BY a.run_id DESC LIMIT 1",
            (sweep, trial),
        )
    return int(rows[0]["run_id"]) if rows else None


def get_sweep(name: str, store: StorePath = None) -> dict[str, Any]:
    """A sweep: its grid, command, options and status, and ``trials`` (in order).

    Raises:
        StoreError: no such sweep.
    """
    with Store.open(store) as st:
        rows = st._rows("SELECT * FROM sweeps WHERE name = ?", (name,))
        if not rows:
            names = [r["name"] for r in st._rows("SELECT name FROM sweeps")]
            raise StoreError(
                f"no sweep {name!r} in {st.path}"
                + (f"; there are: {', '.join(sorted(names))}" if names else "")
            )
        out = rows[0]
        for key in ("command", "grid", "options"):
            out[key] = json.loads(out[key])
        trials = st._rows(
            "SELECT * FROM sweep_trials WHERE sweep = ? ORDER BY started_at, trial",
            (name,),
        )
    for t in trials:
        t["params"] = json.loads(t["params"])
    out["trials"] = trials
    return out
