# Run: .venv/bin/python benchmarks/sweep_ray.py  (about 15 s). Last run (2 vCPUs
# shared with other jobs; table and method in docs/benchmarks.md, issue 17):
#   local ray.init 4.7 s (stated apart)
#   8 tracked trials, 2 at once: local 2.09 s (0.52 s/trial), ray 2.02 s (0.50 s/trial)
#   ray / local: 0.97
"""What running a sweep's trials as Ray tasks costs against local subprocesses.

One process, one local Ray instance with 2 CPUs started first (its start-up is stated
apart), then the same sweep twice, side by side: 8 trials of a tracked script that
does nothing else (``import stoker``, ``stoker.track``, one metric), 2 at once, first
with ``LocalLauncher`` and then with ``RayLauncher`` (1 CPU per trial). Each trial's
time is the sweep's wall time x 2 / 8. The difference is Ray's per-trial cost: a task
submitted and placed, a watchdog process, the output streamed back. The ratio is
what to compare; the absolute numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import ray

from stoker.sweep import LocalLauncher, RayLauncher, SweepOptions, run_sweep

SCRIPT = """
import stoker
a = stoker.param("a", default=0)
with stoker.track("bench", sample=False, capture=False) as run:
    run.log(v=a)
"""


def timed(options: SweepOptions, launcher) -> float:
    t0 = time.perf_counter()
    done = run_sweep(options, launcher=launcher)
    wall = time.perf_counter() - t0
    bad = [r for r in done.results if r.status != "finished"]
    assert not bad, bad
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        Path("trial.py").write_text(textwrap.dedent(SCRIPT))
        t0 = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        print(f"local ray.init {time.perf_counter() - t0:.1f} s (stated apart)")
        store = str(Path(tmp) / "s.db")

        def options(name: str) -> SweepOptions:
            return SweepOptions(
                grid={"a": list(range(args.trials))},
                command=[sys.executable, "trial.py"],
                parallel=2,
                name=name,
                store=store,
            )

        # A warm-up of each, so that neither pays for first imports into the cache.
        timed(options("warm-local"), LocalLauncher())
        timed(options("warm-ray"), RayLauncher(store=store))
        local = timed(options("local"), LocalLauncher())
        on_ray = timed(options("ray"), RayLauncher(store=store))
        n = args.trials
        print(
            f"{n} tracked trials, 2 at once: local {local:.2f} s "
            f"({local * 2 / n:.2f} s/trial), ray {on_ray:.2f} s "
            f"({on_ray * 2 / n:.2f} s/trial)"
        )
        print(f"ray / local: {on_ray / local:.2f}")
        ray.shutdown()


if __name__ == "__main__":
    main()
