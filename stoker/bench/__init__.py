"""``stoker.bench``: measure a loader over a grid of settings, next to its peers.

The library behind ``stoker bench`` (the CLI only parses and prints) and the
measurement the autotuner reuses::

    from stoker import bench

    workload = bench.make_workload("latency", batches=64)
    result = bench.sweep(workload, workers=[1, 2, 4, 8], modes=["thread"],
                         compare=["keras", "torch"])
    bench.write_json(result, "bench.json")
    bench.draw_chart(result, "bench.png")        # needs stoker[charts]
    best = bench.best(result)                    # the fastest fixed stoker setting

    # "auto" is a point of its own; each stoker setting writes a Perfetto trace
    result = bench.sweep(workload, workers=[1, 2, 4, "auto"], trace_dir="traces")
    bench.rows(result)[-1]["tuned_workers"]      # where workers="auto" ended
    result.traces                                # traces/thread-w1-q10.trace.json, ...

    # one measured epoch of one setting
    sample = bench.measure(bench.StokerRunner(), source,
                           bench.Setting("stoker", "thread", workers=4, queue=10))

This package uses only stoker's public API; Keras, torch and matplotlib are imported
lazily, when asked for. The names above are its public surface; the runners, the
peers, the monitor and the JSON schema's constants are in its modules (``runners``,
``peers``, ``monitor``, ``report``).
"""

from __future__ import annotations

from pathlib import Path

from stoker.bench.report import best, rows, table, to_dict, write_csv, write_json
from stoker.bench.runners import Setting, StokerRunner
from stoker.bench.sweep import SweepResult, measure, sweep
from stoker.bench.tracking import record
from stoker.bench.workloads import BUILTIN, Workload, WorkloadError, make_workload


def draw_chart(result: SweepResult, path: str | Path) -> Path:
    """Draw the sweep's PNG chart (see :func:`stoker.bench.chart.draw`).

    Raises:
        ConfigError: matplotlib is missing; the message names ``stoker[charts]``.
    """
    from stoker.bench.chart import draw

    return draw(result, path)


__all__ = [
    "BUILTIN",
    "Setting",
    "StokerRunner",
    "SweepResult",
    "Workload",
    "WorkloadError",
    "best",
    "draw_chart",
    "make_workload",
    "measure",
    "record",
    "rows",
    "sweep",
    "table",
    "to_dict",
    "write_csv",
    "write_json",
]
