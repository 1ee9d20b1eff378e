"""A timeline of the last N batches, written as a Chrome/Perfetto trace.

The rule: tracing is off unless asked (``trace=`` or ``loader.trace(path)``), and
then it costs one clock read and one ``deque.append`` of a tuple per batch on the
consumer's thread, nothing in the workers (measured in ``docs/benchmarks.md``).
The ring keeps the last ``batches`` records, so a run of days stays bounded; the
file is built only when written.

What the file shows (the JSON trace event format, which Perfetto's UI and
``chrome://tracing`` open with no other tool):

- one lane (``tid``) per worker, with a span per batch produced: ``batch <pos>``
  with its source index, epoch and bytes. A span's length is the worker's measured
  produce time; it is placed to end when the batch reached the consumer, which is
  when the worker finished it unless the batch waited in the queue (the workers send
  no clock of their own, so their hot path stays as it is);
- a consumer lane: ``wait`` spans (the loop waiting for data) and ``step`` spans
  (the time between two batches: the training step);
- counters: queue depth at each delivery, and the worker count with an instant
  event per tuning decision (the decision's ``why`` in its arguments).
"""

from __future__ import annotations

import collections
import json
import os
import time
from typing import Any

# Lanes: the consumer is tid 0, worker w is tid w + 1.
_CONSUMER_TID = 0


class TraceRing:
    """The last ``batches`` delivered batches and every tuning decision among them."""

    def __init__(self, batches: int, name: str) -> None:
        self.name = name
        self._batches: collections.deque[tuple[Any, ...]] = collections.deque(
            maxlen=batches
        )
        self._decisions: collections.deque[tuple[float, str, Any, Any, str]] = (
            collections.deque(maxlen=batches)
        )
        self._clock = time.perf_counter

    def batch(
        self,
        epoch: int,
        pos: int,
        index: int,
        worker: int,
        wait_s: float,
        produce_s: float,
        depth: int,
        nbytes: int,
    ) -> None:
        """One delivered batch (called right after the consumer got it)."""
        self._batches.append(
            (self._clock(), epoch, pos, index, worker, wait_s, produce_s, depth, nbytes)
        )

    def decision(self, setting: str, old: Any, new: Any, why: str) -> None:
        """A tuning decision, at the time it was applied."""
        self._decisions.append((self._clock(), setting, old, new, why))

    def events(self) -> list[dict[str, Any]]:
        """The trace events (see the module docstring)."""
        pid = os.getpid()
        out: list[dict[str, Any]] = [
            _meta(pid, _CONSUMER_TID, "process_name", f"stoker {self.name}"),
            _meta(pid, _CONSUMER_TID, "thread_name", "consumer (training loop)"),
        ]
        workers: set[int] = set()
        previous: float | None = None
        for t, epoch, pos, index, w, wait, produce, depth, size in self._batches:
            us = t * 1e6
            if w not in workers:
                workers.add(w)
                out.append(_meta(pid, w + 1, "thread_name", f"worker {w}"))
            out.append(
                {
                    "name": f"batch {pos}",
                    "cat": "produce",
                    "ph": "X",
                    "pid": pid,
                    "tid": w + 1,
                    "ts": us - produce * 1e6,
                    "dur": produce * 1e6,
                    "args": {"epoch": epoch, "index": index, "bytes": size},
                }
            )
            wait_start = us - wait * 1e6
            if previous is not None and wait_start > previous:
                out.append(_span(pid, "step", previous, wait_start - previous))
            if wait > 0:
                out.append(_span(pid, "wait", wait_start, wait * 1e6, pos=pos))
            previous = us
            out.append(_counter(pid, "queue depth", us, depth=depth))
        for t, setting, old, new, why in self._decisions:
            us = t * 1e6
            if isinstance(new, int):
                out.append(_counter(pid, setting, us, **{setting: new}))
            out.append(
                {
                    "name": f"{setting}: {old} -> {new}",
                    "cat": "tuning",
                    "ph": "i",
                    "s": "p",
                    "pid": pid,
                    "tid": _CONSUMER_TID,
                    "ts": us,
                    "args": {"why": why},
                }
            )
        return out

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the trace to ``path`` (JSON object format, atomically replaced)."""
        doc = {"traceEvents": self.events(), "displayTimeUnit": "ms"}
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, path)


def _meta(pid: int, tid: int, name: str, value: str) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {"name": value}}


def _span(pid: int, name: str, ts: float, dur: float, **args: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cat": "consumer",
        "ph": "X",
        "pid": pid,
        "tid": _CONSUMER_TID,
        "ts": ts,
        "dur": dur,
        "args": args,
    }


def _counter(pid: int, name: str, ts: float, **values: int) -> dict[str, Any]:
    return {"name": name, "ph": "C", "pid": pid, "tid": 0, "ts": ts, "args": values}
