"""Re-runs started from the dashboard: one thread each, joined when the app stops.

The rule: a re-run goes through :func:`stoker.track.rerun` (its command, at its
commit, with its diff; the new run is tagged ``rerun_of`` and so links back), on a
thread of its own, because it lasts as long as the training does. At most one
re-run of a run is in flight: pressing the button twice does not start two. When the
app stops, the threads are joined with a timeout; a re-run still going then keeps
running as its own process and records itself as usual.
"""

from __future__ import annotations

import threading
from typing import Any

import stoker.track.api as T

# How long shutting the dashboard down waits for each re-run thread.
_JOIN_TIMEOUT_S = 5.0


class Reruns:
    """The re-runs this dashboard started, and what became of them."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}
        self._outcome: dict[int, str] = {}

    def start(self, run_id: int) -> bool:
        """Start re-running ``run_id``; False if one is already in flight."""
        with self._lock:
            t = self._threads.get(run_id)
            if t is not None and t.is_alive():
                return False
            self._outcome[run_id] = "Re-run started; the new run appears in Runs."
            t = threading.Thread(
                target=self._run, args=(run_id,), name=f"ui-rerun-{run_id}"
            )
            self._threads[run_id] = t
            t.start()
            return True

    def _run(self, run_id: int) -> None:
        try:
            result = T.rerun(run_id, self._store)
        except Exception as e:  # shown on the run's page: the reason, nothing ran
            text = f"Re-run failed: {e}"
        else:
            new = ", ".join(f"#{i}" for i in result.new_run_ids) or "none recorded"
            text = f"Re-run exited with code {result.returncode}; new runs: {new}."
        with self._lock:
            self._outcome[run_id] = text

    def message(self, run_id: int) -> str:
        """What the last re-run of ``run_id`` did, or ''."""
        with self._lock:
            return self._outcome.get(run_id, "")

    def close(self) -> None:
        """Join the re-run threads (each up to :data:`_JOIN_TIMEOUT_S`)."""
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(timeout=_JOIN_TIMEOUT_S)
