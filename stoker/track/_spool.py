"""A run's spool: the writes its PostgreSQL server has not acknowledged, on local disk.

Rule: when the team store cannot be reached (down at the start, gone mid-run, a
refused login), the run's writer thread appends each write, as it would have sent it,
to an SQLite file ``<spool dir>/<run uid>.db`` (default ``.stoker/spool`` under the
working directory, or ``$STOKER_SPOOL``), and the training loop never notices. A write
keeps its sequence number, and the store applies a sequence number once per run, so
a write re-sent by the writer when the server returns, or by ``stoker runs sync``
later, arrives exactly once however often it is sent. A write leaves the spool only
after the server committed it; the file is deleted once empty.

The spool also keeps what is needed to create the run on the server (its ``runs``
columns and uid), the host, pid and start time of its process (``sync`` leaves a live
run's spool to that run's own writer), and the store's URL with the password masked:
a spool never holds a password.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track._store import Changes

SPOOL_ENV = "STOKER_SPOOL"
DEFAULT_SPOOL = Path(".stoker") / "spool"
# A spool is one process's file; another (``sync``) may read it: wait this long for
# the other's lock.
_BUSY_TIMEOUT_S = 10.0


def spool_dir(where: str | os.PathLike[str] | None = None) -> Path:
    """The spool directory: ``where``, else ``$STOKER_SPOOL``, else the default."""
    text = os.fspath(where or os.environ.get(SPOOL_ENV) or DEFAULT_SPOOL)
    return Path(text).expanduser().absolute()


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


def dump_changes(ch: Changes) -> str:
    """A write as JSON text (bytes as base64; NaN and infinities kept)."""
    d = dataclasses.asdict(ch)
    if d["capture"]:
        d["capture"] = {k: _encode(v) for k, v in d["capture"].items()}
    return json.dumps(d)


def load_changes(text: str) -> Changes:
    """The write :func:`dump_changes` gave."""
    d = json.loads(text)
    if d["capture"]:
        d["capture"] = {k: _decode(v) for k, v in d["capture"].items()}
    for key in ("points", "batches", "epochs", "summaries", "params", "tags"):
        d[key] = [tuple(x) for x in d[key]]
    d["loader_starts"] = [tuple(x) for x in d["loader_starts"]]
    if d["final"] is not None:
        d["final"] = tuple(d["final"])
    return Changes(**d)


class Spool:
    """One run's spool file; used by one thread of one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(
                path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS writes (seq INTEGER PRIMARY KEY, "
                "changes TEXT NOT NULL)"
            )
        except sqlite3.Error as e:
            raise StoreError(
                f"cannot write the spool {path}: {e}; set STOKER_SPOOL to a "
                "writable directory"
            ) from e

    @classmethod
    def create(cls, directory: Path, uid: str, meta: dict[str, Any]) -> Spool:
        """A new spool for the run ``uid``, holding ``meta`` (JSON values)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the spool directory {directory}: {e.strerror}; set "
                "STOKER_SPOOL to a writable directory"
            ) from e
        spool = cls(directory / f"{uid}.db")
        spool._conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in {**meta, "uid": uid}.items()],
        )
        return spool

    def set_meta(self, **values: Any) -> None:
        """Record more about the run (``ended=True`` when its writer let go)."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def meta(self) -> dict[str, Any]:
        """What the run stored at creation: uid, store, run columns, process."""
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT * FROM meta")}

    def append(self, chunks: list[Changes]) -> None:
        """Keep writes (each with its ``seq``), in one transaction."""
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO writes (seq, changes) VALUES (?, ?)",
                [(ch.seq, dump_changes(ch)) for ch in chunks],
            )

    def pending(self) -> list[Changes]:
        """The writes not yet acknowledged, in order."""
        return [
            load_changes(text)
            for (text,) in self._conn.execute("SELECT changes FROM writes ORDER BY seq")
        ]

    def count(self) -> int:
        """How many writes wait."""
        return int(self._conn.execute("SELECT count(*) FROM writes").fetchone()[0])

    def acknowledge(self, seq: int) -> None:
        """The server committed write ``seq``: drop it."""
        self._conn.execute("DELETE FROM writes WHERE seq = ?", (seq,))

    def close(self, *, delete_if_empty: bool = True) -> bool:
        """Close; delete the file if nothing waits. True if it was deleted."""
        empty = self.count() == 0
        self._conn.close()
        if empty and delete_if_empty:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return True
        return False
