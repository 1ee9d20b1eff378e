"""``stoker tune``: a short run of the user's source with every setting on "auto".

The rule: the search is the autotuner itself, run offline. The source goes through a
``stoker.Loader`` with ``workers``, ``max_queue_size`` and ``use_multiprocessing`` on
``"auto"`` behind a training loop that takes ``step`` seconds per batch, for at least
``min_epochs`` epochs (a move to processes takes effect at an epoch start) and until
``seconds`` have passed; then it reports the settings in force and the verdict.

Why not a sweep: a sweep (``stoker bench``) measures every point for as long as one
run takes, and needs the user to guess the range; the controller goes where the
measurements point, and its decisions say why, so a few seconds are enough and the
output can be pasted into the training script.
"""

from __future__ import annotations

import time
from typing import Any

import stoker
from stoker.bench.workloads import make_workload

__all__ = ["tune"]

# Long enough for a few controller windows (0.15 s each) and an epoch change.
DEFAULT_SECONDS = 5.0
DEFAULT_MIN_EPOCHS = 2


def tune(
    spec: str,
    *,
    seconds: float = DEFAULT_SECONDS,
    step: float = 0.0,
    batches: int | None = None,
    min_epochs: int = DEFAULT_MIN_EPOCHS,
) -> dict[str, Any]:
    """Run the source named by ``spec`` on "auto" settings; report what they became.

    Args:
        spec: ``"module:callable"`` (a function of no arguments returning a source)
            or a built-in workload of ``stoker bench`` (``latency``, ``cpu``, ...).
        seconds: stop after the epoch running when this much time has passed (an
            epoch is cut short at ``2 * seconds``).
        step: seconds the simulated training step takes per batch (0: as fast as
            the loop can take batches, the most demanding case).
        batches: batches per epoch (default: the whole source).
        min_epochs: epochs to run at least.

    Returns:
        ``settings`` (keyword arguments for ``stoker.Loader``), ``mode``,
        ``throughput_bps``, ``wait_fraction``, ``verdict``, ``advice``, ``tuning``
        (every decision), ``batches``, ``epochs``, ``elapsed_s`` and ``workload``.

    Raises:
        stoker.ConfigError: a bad spec or number.
    """
    if not seconds > 0 or step < 0 or min_epochs < 1:
        raise stoker.ConfigError(
            f"seconds={seconds!r}, step={step!r}, min_epochs={min_epochs!r}: expected "
            "seconds > 0, step >= 0 and min_epochs >= 1"
        )
    workload = make_workload(spec, batches=batches)
    t0 = time.perf_counter()
    with stoker.Loader(
        workload.source,
        workers="auto",
        max_queue_size="auto",
        use_multiprocessing="auto",
    ) as loader:
        epochs = 0
        while epochs < min_epochs or time.perf_counter() - t0 < seconds:
            for _ in loader:
                if step:
                    time.sleep(step)
                if time.perf_counter() - t0 > 2 * seconds and epochs >= min_epochs:
                    break
            epochs += 1
        s = loader.stats.summary()
    return {
        "workload": spec,
        "settings": {
            "workers": s["workers"],
            "use_multiprocessing": s["mode"] == "process",
            "max_queue_size": s["max_queue_size"],
        },
        "mode": s["mode"],
        "throughput_bps": s["throughput_bps"],
        "wait_fraction": s["wait_fraction"],
        "verdict": s["verdict"],
        "advice": s["advice"],
        "tuning": s["tuning"],
        "batches": s["batches"],
        "epochs": epochs,
        "elapsed_s": time.perf_counter() - t0,
    }
