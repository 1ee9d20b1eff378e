"""The one writer thread of a run: drains its queue into the store.

The training thread only appends tuples to a ``collections.deque`` (thread-safe, no
lock, no wake-up): that is all ``run.log`` and ``on_batch`` cost it. This thread
wakes every :data:`FLUSH_EVERY_S`, takes everything queued, adds a process sample and
the heartbeat, and writes it all in one transaction. So:

- a point logged more than about ``FLUSH_EVERY_S`` plus one transaction ago is in the
  store even if the process is SIGKILLed now (the issue asks for one second);
- a failed write (store locked past the busy timeout, disk full) keeps the items and
  retries on the next wake-up; it is logged once, and reported by ``finish()``;
- each write gets the next sequence number when it is formed and keeps it until the
  store has it, so a write retried after an unknown outcome is applied once;
- a team store that is away: writes go to the run's spool instead (``_delivery``);
- the queue is unbounded: while a local store refuses writes, memory grows.

Git and environment capture run on a helper thread so a slow ``git diff`` never delays
a flush; ``finish()`` waits for it (at most :data:`_CAPTURE_TIMEOUT_S`).
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track import _capture
from stoker.track._delivery import Delivery, Remote
from stoker.track._fingerprint import with_fingerprint
from stoker.track._liveness import HEARTBEAT_EVERY_S
from stoker.track._sampler import SAMPLE_EVERY_S, ProcessSampler
from stoker.track._store import Changes, Store

FLUSH_EVERY_S = 0.2
_CAPTURE_TIMEOUT_S = 30.0
# Attempts of the final write before giving up (each may wait the busy timeout).
_FINAL_ATTEMPTS = 3
_RETRY_PAUSE_S = 0.1
_log = logging.getLogger("stoker")

# Queue items: a tuple whose first element says what it is.
METRIC = 0  # (METRIC, time, step, {key: value})
PARAMS = 1  # (PARAMS, [(key, json_text)])
TAGS = 2  # (TAGS, [(key, text)])
LOADER_START = 3  # (LOADER_START, time, loader_key, settings)
BATCH = 4  # (BATCH, time, BatchEvent)
EPOCH = 5  # (EPOCH, time, loader_key, epoch, summary)
CLOSE = 6  # (CLOSE, time, loader_key, summary)
SYSTEM = 7  # (SYSTEM, time, step, {key: value})
CAPTURE = 8  # (CAPTURE, {runs column: value})


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def changes(items: list[tuple[Any, ...]], now: float) -> Changes:
    """Turn queue items into the rows of one write transaction."""
    ch = Changes(heartbeat=now)
    points = ch.points
    for item in items:
        kind = item[0]
        if kind == BATCH:
            _, t, e = item
            ch.batches.append(
                (
                    e.loader_id,
                    e.epoch,
                    e.position,
                    e.source_index,
                    t,
                    e.wait_s,
                    e.produce_s,
                    e.queue_depth,
                    e.nbytes,
                )
            )
        elif kind in (METRIC, SYSTEM):
            _, t, step, values = item
            series = "metric" if kind == METRIC else "system"
            for key, v in values.items():
                points.append(
                    (series, key, step, t, v if type(v) is float else _float(v))
                )
        elif kind == PARAMS:
            ch.params.extend(item[1])
        elif kind == TAGS:
            ch.tags.extend(item[1])
        elif kind == LOADER_START:
            settings = with_fingerprint(item[3])
            ch.loader_starts.append((item[2], item[1], _json(settings)))
        elif kind == EPOCH:
            _, t, key, epoch, summary = item
            ch.epochs.append((key, epoch, t, _json(summary)))
            ch.summaries.append((key, _json(summary), None))
        elif kind == CLOSE:
            _, t, key, summary = item
            ch.summaries.append((key, _json(summary), t))
        elif kind == CAPTURE:
            ch.capture = {**(ch.capture or {}), **item[1]}
    return ch


class Writer:
    """Owns a run's store connection once started; see the module docstring."""

    def __init__(
        self,
        store: Store | None,
        run_id: int | None,
        queue: collections.deque[tuple[Any, ...]],
        *,
        capture: bool = True,
        sample: bool = True,
        remote: Remote | None = None,
        on_run_id: Callable[[int], None] = lambda _: None,
        unavailable: StoreError | None = None,
    ) -> None:
        self._delivery = Delivery(store, run_id, remote, on_run_id, unavailable)
        self._unsent: list[Changes] = []  # formed writes, oldest first
        self._seq = 0
        self._queue = queue
        self._sample = sample
        self._pending: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._flush_requested = False
        self._cycles_started = 0
        # The last cycle that wrote everything it drained (so all queued before it).
        self._written_through = 0
        self._final: tuple[str, float, str | None] | None = None
        self._last_heartbeat = 0.0
        self._sample_step = 0
        self.final_written = False
        self.spooled_to: Path | None = None  # the spool left when the run ended
        self._capture_thread = threading.Thread(
            target=self._capture,
            name=f"stoker-track-capture-{run_id or 'spooled'}",
            daemon=True,
        )
        self._thread = threading.Thread(
            target=self._main,
            name=f"stoker-track-writer-{run_id or 'spooled'}",
            daemon=True,
        )
        self._want_capture = capture

    @property
    def error(self) -> BaseException | None:
        """The last write failure, if any."""
        return self._delivery.error

    @property
    def deleted(self) -> bool:
        """Whether the run was deleted from the store while running."""
        return self._delivery.deleted

    @property
    def spool_path(self) -> Path | None:
        """The spool while the run spools."""
        return self._delivery.spool_path

    def close(self) -> None:
        """Close the store (and a spool); after :meth:`finish`."""
        self.spooled_to = self._delivery.close()

    @property
    def alive(self) -> bool:
        """Whether the writer thread still runs."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the writer (and the capture helper)."""
        if self._want_capture:
            self._capture_thread.start()
        self._thread.start()

    def _capture(self) -> None:
        try:
            columns = _capture.git_state(_capture.command()["cwd"])
            columns["environment"] = _json(_capture.environment())
        except Exception as e:  # capture must never break a run
            _log.warning("stoker.track: could not record git/environment: %s", e)
            columns = {"git_note": f"capture failed: {e}"}
        self._queue.append((CAPTURE, columns))

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call is written (or timeout).

        A failed write is retried at the writer's usual pace until ``timeout``.
        """
        with self._cond:
            target = self._cycles_started + 1
            self._flush_requested = True
            self._cond.notify_all()

            def written() -> bool:
                return self._written_through >= target

            self._cond.wait_for(
                lambda: written() or not self._thread.is_alive(), timeout
            )
            return written()

    def finish(self, status: str, error: str | None, timeout: float) -> bool:
        """Record the final status, write everything left and stop; True if done."""
        if self._capture_thread.is_alive():
            self._capture_thread.join(_CAPTURE_TIMEOUT_S)
        with self._cond:
            self._final = (status, time.time(), error)
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return self.final_written

    def _main(self) -> None:
        sampler = self._sampler()
        next_sample = 0.0
        while True:
            with self._cond:
                if not (self._stopping or self._flush_requested):
                    self._cond.wait(FLUSH_EVERY_S)
                self._flush_requested = False
                stopping = self._stopping
                self._cycles_started += 1
                cycle = self._cycles_started
            now = time.time()
            if sampler is not None and now >= next_sample:
                self._take_sample(sampler, now)
                next_sample = now + SAMPLE_EVERY_S
            if stopping:
                self._write_final()
                ok = self.final_written
            else:
                ok = self._cycle(now)
            with self._cond:
                if ok:
                    self._written_through = cycle
                self._cond.notify_all()
            if stopping:
                return

    def _sampler(self) -> ProcessSampler | None:
        if not self._sample:
            return None
        try:
            return ProcessSampler()
        except Exception as e:  # samples are a nicety; the run goes on without
            _log.warning("stoker.track: no CPU/memory samples: %s", e)
            return None

    def _take_sample(self, sampler: ProcessSampler, now: float) -> None:
        try:
            values = sampler.sample()
        except Exception:  # e.g. /proc unreadable for a moment
            return
        if values:
            self._queue.append((SYSTEM, now, self._sample_step, values))
            self._sample_step += 1

    def _drain(self) -> None:
        q = self._queue
        for _ in range(len(q)):
            self._pending.append(q.popleft())
        if self.deleted:
            self._pending.clear()

    def _cycle(self, now: float, final: tuple[Any, ...] | None = None) -> bool:
        self._drain()
        if self.deleted:
            return True
        due = now - self._last_heartbeat >= HEARTBEAT_EVERY_S
        # A write that only refreshes the heartbeat is not formed while older ones
        # wait (they carry one) or while spooling (nobody could see it).
        idle = self._unsent or self._delivery.spool_path is not None
        if self._pending or final or (due and not idle):
            ch = changes(self._pending, now)
            ch.final = final
            self._seq += 1
            ch.seq = self._seq
            self._unsent.append(ch)
            self._pending.clear()
            self._last_heartbeat = now
        if not self._unsent:
            if due and self._delivery.spool_path is not None:
                # Nothing to write, but try the server again at the usual pace.
                return self._delivery.send(self._unsent, now)
            return True
        return self._delivery.send(self._unsent, now, retry_now=final is not None)

    def _write_final(self) -> None:
        ok = self._cycle(time.time(), final=self._final)
        for _ in range(_FINAL_ATTEMPTS - 1):
            if ok:
                break
            time.sleep(_RETRY_PAUSE_S)
            ok = self._delivery.send(self._unsent, time.time())
        self.final_written = ok and not self.deleted
