"""Recording a finished sweep in the tracking store (``stoker.track``), if present.

One tracking run per sweep, named ``bench-<workload>``. Its params are the grid, the
workload and the machine; each setting's medians are logged at ``step = workers``
under keys ``<loader>.<mode>.q<queue>.<metric>``, so a metric-against-step plot of
the run is the bench chart itself. The serial baseline is logged at step 1 under
``serial.*``. A setting with "auto" in it is logged at the pool it ended with under
``<loader>.<mode>.q<queue>.auto.<metric>`` (one point on the chart, beside the
fixed line), with its ``tuning_decisions``.

The sweep is recorded after it ends, never inside ``stoker.track``'s ``with`` block:
inside it every loader reports each batch to the run, which would add the tracker's
cost to the times being measured.
"""

from __future__ import annotations

import importlib
from typing import Any

from stoker.bench.report import is_auto, machine, rows
from stoker.bench.sweep import SweepResult

# The medians worth a time series; the rest stays in the JSON document.
_METRICS = (
    "batches_per_s",
    "mb_per_s",
    "speedup",
    "efficiency",
    "wait_fraction",
    "real_s",
    "user_s",
    "sys_s",
    "peak_rss_mb",
)


def tracker_available() -> bool:
    """Whether ``stoker.track`` is installed in this build of stoker."""
    try:
        module = importlib.import_module("stoker.track")
    except ImportError:
        return False
    return callable(getattr(module, "track", None))


def record(
    result: SweepResult, name: str | None = None, store: str | None = None
) -> Any:
    """Record ``result`` as one run in the tracking store.

    Args:
        result: a finished sweep.
        name: the run's name; default ``bench-<workload>``.
        store: the store's path; default: the tracker's (``$STOKER_STORE``, else
            ``.stoker/store.db`` under the working directory).

    Returns:
        The tracking run (its ``id`` names it in ``stoker runs``), or None when this
        build of stoker has no ``stoker.track``.

    Raises:
        StoreError: the store cannot be written.
    """
    if not tracker_available():
        return None
    track = importlib.import_module("stoker.track").track
    w = result.workload
    params: dict[str, Any] = {
        "workload": w.name,
        **{f"workload.{k}": v for k, v in w.params.items()},
        **{f"grid.{k}": v for k, v in result.grid.items()},
        **{f"machine.{k}": v for k, v in machine().items()},
    }
    tags = {"kind": "bench", "workload": w.name}
    # sample=False: the tracker's CPU/memory sampler would only see the recording.
    with track(
        name or f"bench-{w.name}", params=params, store=store, tags=tags, sample=False
    ) as run:
        for row in rows(result):
            if row["status"] != "ok":
                continue
            extra: tuple[str, ...] = ()
            if row["loader"] == "serial":
                prefix, step = "serial", 1
            elif is_auto(row):
                if not isinstance(row["tuned_workers"], int):
                    continue  # not recorded where it ended: no place on the chart
                prefix = f"{row['loader']}.{row['mode']}.q{row['queue']}.auto"
                step, extra = row["tuned_workers"], ("tuning_decisions",)
            else:
                prefix = f"{row['loader']}.{row['mode']}.q{row['queue']}"
                step = row["workers"]
            metrics = {
                f"{prefix}.{m}": float(row[m])
                for m in (*_METRICS, *extra)
                if row[m] is not None
            }
            run.log(step=step, **metrics)
    return run
