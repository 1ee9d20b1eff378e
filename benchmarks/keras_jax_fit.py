"""Keras ``fit`` on the JAX backend: Keras' own ``PyDataset`` workers vs stoker.

Run:  .venv/bin/python benchmarks/keras_jax_fit.py           (about 8 minutes)
      .venv/bin/python benchmarks/keras_jax_fit.py --repeat 1 --only digits

``benchmarks/keras_fit.py``'s cases, sources and models, with ``KERAS_BACKEND=jax``
and as users run them: every fit in a fresh Python process (imports, JIT compilation,
worker start-up and the first epoch included), the peers interleaved, median of
``--repeat``. Ratio = PyDataset time / stoker time (above 1: stoker is faster).
Process workers fork on both sides (Keras' enqueuer uses the platform default; stoker
is given ``start_method="fork"``); JAX warns at each fork, for both alike.

Last numbers (2-core VM shared with other jobs, JAX 0.10.2 CPU, Keras 3.15; 2 epochs
per fit, one run with --repeat 3, 2026-11-29; also in docs/benchmarks.md):

  | case | mode | workers | Keras PyDataset (s) | stoker (s) | ratio |
  |---|---|---:|---:|---:|---:|
  | digits | threads | 8 | 5.36 | 4.57 | 1.17x |
  | 4MB | processes | 2 | 2.18 | 1.46 | 1.50x |
  | 4MB | threads | 2 | 1.76 | 1.03 | 1.70x |
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [("digits", "threads", 8), ("4MB", "processes", 2), ("4MB", "threads", 2)]


def run_one(case: str, mode: str, workers: int, feed: str, epochs: int) -> float:
    """One fit in this (fresh) process; returns its seconds."""
    sys.path.insert(0, str(HERE))
    import keras_fit

    import stoker
    from stoker.adapters.keras import adapt

    source = next(s for c, s, m, w in keras_fit.cases(case) if m == mode)
    processes = mode == "processes"
    model = keras_fit.model_for(case, getattr(source, "features", 0))
    start = time.perf_counter()
    if feed == "keras":
        data = keras_fit.keras_dataset(source, workers, processes)
        model.fit(data, epochs=epochs, verbose=0, shuffle=False)
    else:
        with stoker.Loader(
            source,
            workers=workers,
            use_multiprocessing=processes,
            max_queue_size=10,
            start_method="fork" if processes else None,
        ) as loader:
            model.fit(adapt(loader), epochs=epochs, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=sorted({c for c, _, _ in CASES}))
    parser.add_argument("--child", nargs=4, metavar=("CASE", "MODE", "W", "FEED"))
    args = parser.parse_args()
    if args.child:
        case, mode, workers, feed = args.child
        print(json.dumps(run_one(case, mode, int(workers), feed, args.epochs)))
        return
    env = dict(os.environ, KERAS_BACKEND="jax")
    chosen = [c for c in CASES if args.only in (None, c[0])]
    times: dict[tuple, list[float]] = {}
    for _ in range(args.repeat):
        for case, mode, workers in chosen:
            for feed in ("keras", "stoker"):  # interleaved: drifts hit both alike
                child = ["--child", case, mode, str(workers), feed]
                out = subprocess.run(
                    [sys.executable, __file__, "--epochs", str(args.epochs), *child],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=900,
                )
                if out.returncode:
                    sys.exit(out.stderr[-3000:])
                last = out.stdout.strip().splitlines()[-1]
                times.setdefault((case, mode, feed), []).append(json.loads(last))
    print(f"KERAS_BACKEND=jax, {args.epochs} epochs per fit, fresh process per fit, ")
    print(f"median of {args.repeat}\n")
    print("| case | mode | workers | Keras PyDataset (s) | stoker (s) | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for case, mode, workers in chosen:
        keras_s = statistics.median(times[(case, mode, "keras")])
        stoker_s = statistics.median(times[(case, mode, "stoker")])
        print(
            f"| {case} | {mode} | {workers} | {keras_s:.2f} | {stoker_s:.2f} | "
            f"{keras_s / stoker_s:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
