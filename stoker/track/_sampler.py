"""Samples of the training process's CPU and memory, taken on the writer thread.

psutil is imported when the first sampler is made, never at ``import stoker``. A
sample reads /proc for this process and its children (process workers); it takes
well under a millisecond, once every :data:`SAMPLE_EVERY_S`, off the training thread.
The samples become the run's ``system`` series:

- ``cpu_percent``, ``rss_mb``, ``threads``: this process (100 % is one core);
- ``children``, ``children_cpu_percent``, ``children_rss_mb``: its child processes;
- ``host_cpu_percent``, ``host_memory_percent``: the whole machine.
"""

from __future__ import annotations

import logging
from typing import Any

SAMPLE_EVERY_S = 1.0
_MB = 1024 * 1024
_log = logging.getLogger("stoker")


class ProcessSampler:
    """Reads CPU and memory figures; ``sample()`` returns {} if psutil is missing."""

    def __init__(self) -> None:
        self._psutil: Any = None
        self._proc: Any = None
        self._children: dict[int, Any] = {}
        try:
            import psutil
        except ImportError:
            _log.warning("stoker.track: psutil is missing; no CPU/memory samples")
            return
        self._psutil = psutil
        self._proc = psutil.Process()
        # The first cpu_percent() call only starts the interval; prime both.
        self._proc.cpu_percent(None)
        psutil.cpu_percent(None)

    def sample(self) -> dict[str, float]:
        """One sample of every ``system`` series (empty without psutil)."""
        psutil = self._psutil
        if psutil is None:
            return {}
        proc = self._proc
        try:
            with proc.oneshot():
                out = {
                    "cpu_percent": float(proc.cpu_percent(None)),
                    "rss_mb": proc.memory_info().rss / _MB,
                    "threads": float(proc.num_threads()),
                }
            out.update(self._sample_children())
            out["host_cpu_percent"] = float(psutil.cpu_percent(None))
            out["host_memory_percent"] = float(psutil.virtual_memory().percent)
        except psutil.Error:
            return {}
        return out

    def _sample_children(self) -> dict[str, float]:
        psutil = self._psutil
        cpu = rss = 0.0
        seen: dict[int, Any] = {}
        for child in self._proc.children(recursive=True):
            # Keep each child's Process object: cpu_percent() measures from the
            # previous call on the same object.
            known = self._children.get(child.pid, child)
            try:
                cpu += known.cpu_percent(None)
                rss += known.memory_info().rss
            except psutil.Error:
                continue
            seen[child.pid] = known
        self._children = seen
        return {
            "children": float(len(seen)),
            "children_cpu_percent": cpu,
            "children_rss_mb": rss / _MB,
        }
