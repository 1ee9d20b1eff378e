"""``stoker sweep``: run a command once per combination of a grid, track each trial.

The spreadsheet of the write-up, automated: each trial is a subprocess whose run is
tracked with its params and the sweep's name; the table and the chart come from the
store, so ``stoker runs compare --sweep NAME`` gives them again later. See
docs/sweep.md. ``--ray`` runs each trial as a Ray task (``RayLauncher``; Ray is
imported only then). Layer 4: uses ``stoker.track`` and ``stoker.bench`` (the chart's
matplotlib set-up).
"""

from __future__ import annotations

from stoker.sweep._grid import Trial, parse_grid, trials
from stoker.sweep._launch import Handle, Launcher, LocalLauncher
from stoker.sweep._ray_launch import RayLauncher, RayTrial
from stoker.sweep._report import draw, sweep_rows
from stoker.sweep._runner import Sweep, SweepOptions, TrialResult, run_sweep

__all__ = [
    "Handle",
    "Launcher",
    "LocalLauncher",
    "RayLauncher",
    "RayTrial",
    "Sweep",
    "SweepOptions",
    "Trial",
    "TrialResult",
    "draw",
    "parse_grid",
    "run_sweep",
    "sweep_rows",
    "trials",
]
