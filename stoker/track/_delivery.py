"""Where a run's writes go: its store, or its spool while a team store is away.

Rule: the writer thread hands every write (a ``Changes`` with its sequence number)
to :meth:`Delivery.send`, in order, and never waits for a server that is away:

- a local SQLite store: written; a failure is kept and retried (as before);
- a PostgreSQL store that answers: written, each sequence number applied once;
- one that is unreachable, refuses the login, or drops the connection: the write,
  and every later one, goes to the run's spool (``_spool``) and counts as delivered.
  Every :data:`RECONNECT_EVERY_S` the writer tries the server again; once it answers,
  the run is created there if it never was (by its uid), the spool is sent in order,
  and writes go to the server again.

Why the run is not failed: a tracking server is a convenience, the training is the
work; a run may not stop or slow down because a database did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from stoker._errors import StoreError
from stoker.track._db import StoreUnavailable
from stoker.track._liveness import host, process_started_at
from stoker.track._spool import Spool, spool_dir
from stoker.track._store import Changes, Store
from stoker.track._url import mask

# How often a spooling run tries its server again. Connecting waits at most
# _postgres.CONNECT_TIMEOUT_S, on the writer thread.
RECONNECT_EVERY_S = 2.0
_log = logging.getLogger("stoker")


class Remote(NamedTuple):
    """What a run needs to reach, or re-reach, a PostgreSQL store."""

    url: str  # with the password: kept in memory only
    uid: str
    columns: dict[str, Any]  # the runs row to create (uid included)
    spool_dir: Path


class Delivery:
    """Sends a run's writes; see the module docstring. Used by the writer thread."""

    def __init__(
        self,
        store: Store | None,
        run_id: int | None,
        remote: Remote | None,
        on_run_id: Callable[[int], None] = lambda _: None,
        unavailable: StoreError | None = None,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self._remote = remote
        self._on_run_id = on_run_id
        self._spool: Spool | None = None
        self._next_connect = 0.0
        self.error: BaseException | None = None  # the last failure, if any
        self.deleted = False  # the run was deleted from the store while running
        if store is None:
            assert remote is not None and unavailable is not None
            self._start_spooling(unavailable, time.time())

    @property
    def spool_path(self) -> Path | None:
        """The spool file while the run spools, else None."""
        return None if self._spool is None else self._spool.path

    def send(
        self, chunks: list[Changes], now: float, *, retry_now: bool = False
    ) -> bool:
        """Deliver ``chunks`` in order, removing each one delivered; True if all were.

        Args:
            chunks: the writes, oldest first; emptied as they are delivered.
            now: the time (for the reconnect pace).
            retry_now: while spooling, try the server now whatever the pace.
        """
        if self._spool is not None:
            self._spool.append(chunks)
            chunks.clear()
            if retry_now or now >= self._next_connect:
                self._next_connect = now + RECONNECT_EVERY_S
                self._resume()
            return True
        assert self._store is not None and self.run_id is not None
        try:
            while chunks:
                if not self._store.write(self.run_id, chunks[0]):
                    self._mark_deleted()
                    chunks.clear()
                    return True
                chunks.pop(0)
        except StoreUnavailable as e:
            if self._remote is None:
                return self._failed(e)
            try:
                self._start_spooling(e, now)
            except StoreError as no_spool:  # keep the writes in memory, retry
                return self._failed(no_spool)
            return self.send(chunks, now)
        except StoreError as e:
            return self._failed(e)
        except Exception as e:  # a bug must not kill the writer silently
            _log.exception("stoker.track: run %s write failed", self.run_id)
            self.error = e
            return False
        self.error = None
        return True

    def _failed(self, e: StoreError) -> bool:
        if self.error is None:
            _log.warning("stoker.track: run %s not written yet: %s", self.run_id, e)
        self.error = e
        return False

    def _mark_deleted(self) -> None:
        self.deleted = True
        _log.warning(
            "stoker.track: run %s was deleted from the store while running; its "
            "further data is dropped",
            self.run_id,
        )

    def _start_spooling(self, why: StoreError, now: float) -> None:
        assert self._remote is not None
        r = self._remote
        pid = os.getpid()
        meta = {
            "store": mask(r.url),
            "run_id": self.run_id,
            "columns": r.columns,
            "host": host(),
            "pid": pid,
            "pid_started_at": process_started_at(pid),
            "spooled_at": now,
        }
        self._spool = Spool.create(r.spool_dir, r.uid, meta)
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
        self._next_connect = now + RECONNECT_EVERY_S
        self.error = why
        _log.warning(
            "stoker.track: %s. Run %s goes on and spools to %s; the spool is sent "
            "when the server answers again, or by `stoker runs sync`.",
            why,
            self.run_id if self.run_id is not None else r.uid,
            self._spool.path,
        )

    def _resume(self) -> None:
        assert self._remote is not None and self._spool is not None
        try:
            store = Store.open(self._remote.url, create=True)
        except StoreError:
            return
        try:
            if self.run_id is None:
                self.run_id = store.create_run(**self._remote.columns)
                self._on_run_id(self.run_id)
            for ch in self._spool.pending():
                if not store.write(self.run_id, ch):
                    self._mark_deleted()
                    break
                self._spool.acknowledge(ch.seq or 0)
        except StoreError:
            store.close()
            return
        path = self._spool.path
        self._spool.close()
        self._spool = None
        self._store = store
        self.error = None
        _log.warning(
            "stoker.track: the store %s answers again; run %s's spool %s was sent",
            store.path,
            self.run_id,
            path,
        )

    def close(self) -> Path | None:
        """Close the store and the spool; the spool's path if writes still wait."""
        left = None
        if self._spool is not None:
            self._spool.set_meta(ended=True)  # `runs sync` may send it now
            if not self._spool.close():
                left = self._spool.path
        self._spool = None
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        return left


def open_for_run(
    where: Path | str, columns: dict[str, Any]
) -> tuple[Store | None, Remote | None, StoreError | None, int | None]:
    """A starting run's store, its remote (PostgreSQL) and its id.

    Returns ``(store, remote, unavailable, run_id)``: with a server that is away at
    start, ``store`` and ``run_id`` are None and ``unavailable`` says why: the
    writer spools and creates the run once the server answers (the run goes on).

    Raises:
        StoreError: an SQLite store that cannot be opened or written.
    """
    remote = None
    if isinstance(where, str):
        remote = Remote(where, columns["uid"], columns, spool_dir())
    store: Store | None = None
    unavailable: StoreError | None = None
    run_id: int | None = None
    try:
        store = Store.open(where, create=True)
    except StoreUnavailable as e:
        if remote is None:
            raise
        unavailable = e  # the writer spools; the run goes on
    if store is not None:
        try:
            run_id = store.create_run(**columns)
        except StoreUnavailable as e:
            store.close()
            if remote is None:
                raise
            store, unavailable = None, e
        except BaseException:
            store.close()
            raise
    return store, remote, unavailable, run_id
