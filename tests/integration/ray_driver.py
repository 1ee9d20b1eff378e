"""issue 17: a training script run as a child process by test_ray_driver.py.

Usage: ``python -m tests.integration.ray_driver N_LOADERS``. It iterates
``N_LOADERS`` short loaders on the Ray backend, then starts a long epoch, prints one
JSON line (the pids of its child processes, seconds to the first batch) and keeps
consuming until it is killed or interrupted. That line starts with ``READY``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import psutil

import stoker
from tests import sources

READY = "stoker-driver-ready"
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
for _ in range(int(sys.argv[1])):
    with stoker.Loader(sources.Indexed(n=4), workers=2, backend="ray") as short:
        list(short)
loader = stoker.Loader(sources.Indexed(n=10_000, sleep=0.05), workers=2, backend="ray")
t0 = time.perf_counter()
it = iter(loader)
next(it)
first_s = time.perf_counter() - t0
kids = [p.pid for p in psutil.Process().children(recursive=True)]
# Marked: Ray echoes the cluster's log lines to this process's stdout too.
print(READY, json.dumps({"pids": kids, "first_batch_s": first_s}), flush=True)
for _ in it:
    pass
