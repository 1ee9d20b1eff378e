"""The store's reads and writes: every SQL statement the tracker runs on a run.

Rule: the SQL here is written once, in the subset SQLite and PostgreSQL both run, and
goes through a ``_db.Db`` (``_sqlite.SqliteDb`` or ``_postgres.PostgresDb``), which
translates placeholders and bulk inserts and nothing else. New queries follow suit:
``?`` placeholders, ``ON CONFLICT`` rather than ``INSERT OR ...``, ``RETURNING``
rather than ``lastrowid``, ``count(*) - count(x)`` rather than ``sum(x IS NULL)``;
a long list of values is ``Db.one_of`` + ``Db.values_of`` (``IN (?, ...)`` works
on both, but sends one parameter per value).
The schema is in ``_migrations``. The rules the methods keep:

- each write is one transaction: a crash leaves either the whole batch or none;
- a write that carries a sequence number (``Changes.seq``) is applied at most once
  per run: re-sending it after a lost acknowledgement, or from a spool, is a no-op;
- on SQLite, WAL journal with ``synchronous=NORMAL``: readers never block the
  writers, and a committed transaction survives the death of the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track._db import Db
from stoker.track._store_reads import StoreReads
from stoker.track._url import resolve


@dataclasses.dataclass
class Changes:
    """What one write transaction adds to a run (built by the writer thread)."""

    heartbeat: float
    params: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    tags: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # (kind, key, step, time, value)
    points: list[tuple[str, str, int, float, float]] = dataclasses.field(
        default_factory=list
    )
    # (loader_key, started_at, settings_json)
    loader_starts: list[tuple[str, float, str]] = dataclasses.field(
        default_factory=list
    )
    # (loader_key, epoch, position, source_index, time, wait, produce, depth, nbytes)
    batches: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    # (loader_key, epoch, time, summary_json)
    epochs: list[tuple[str, int, float, str]] = dataclasses.field(default_factory=list)
    # (loader_key, summary_json, closed_at or None)
    summaries: list[tuple[str, str, float | None]] = dataclasses.field(
        default_factory=list
    )
    capture: dict[str, Any] | None = None  # runs columns: git_*, environment
    final: tuple[str, float, str | None] | None = None  # status, ended_at, error
    seq: int | None = None  # the run's write number: applied once (see the module)

    def empty(self) -> bool:
        """Whether only the heartbeat would be written."""
        return not (
            self.params
            or self.tags
            or self.points
            or self.loader_starts
            or self.batches
            or self.epochs
            or self.summaries
            or self.capture
            or self.final
        )


class Store(StoreReads):
    """An open store (SQLite file or PostgreSQL). Not thread-safe: one thread at a time.

    Use :meth:`open`; ``close()`` is idempotent.

    Attributes:
        path: the SQLite file, or the PostgreSQL URL with its password masked.
        dialect: 'sqlite' or 'postgresql'.
        readonly: whether writes are refused.
    """

    def __init__(self, db: Db) -> None:
        self._db = db
        self.path: Path | str = db.where
        self.dialect = db.dialect
        self.readonly = db.readonly
        # Ids of rows created in committed transactions, cleared on any rollback.
        self._series: dict[tuple[int, str, str], int] = {}
        self._loaders: dict[tuple[int, str], int] = {}

    @property
    def _conn(self) -> Any:
        """The SQLite connection, for code written before the PostgreSQL store.

        New code uses ``self._rows(sql, args)`` or ``self._db``, which run on both.
        """
        conn = getattr(self._db, "conn", None)
        if conn is None:
            raise StoreError(
                f"{self.path}: this code uses the SQLite connection directly; use "
                "Store._rows() / Store._db, which work on PostgreSQL too"
            )
        return conn

    @classmethod
    def open(
        cls, store: str | os.PathLike[str] | None = None, *, create: bool = False
    ) -> Store:
        """Open (and with ``create``, create or migrate) the store.

        Args:
            store: the store's path or ``postgresql://`` URL; default
                ``$STOKER_STORE`` or ``.stoker/store.db`` under the working directory.
            create: create a missing store and bring an old one to the current
                schema, as a tracking run does. Readers pass False: a missing store
                is an error, and a store they cannot write is opened read-only.

        Raises:
            StoreError: the path is missing (without ``create``), a directory, not a
                stoker store, from a newer stoker, or cannot be opened or written;
                ``_db.StoreUnavailable`` (a StoreError) when a server is unreachable.
        """
        where = resolve(store)
        if isinstance(where, str):
            from stoker.track._postgres import PostgresDb

            pg = PostgresDb(where)
            try:
                pg.migrate(create)
            except BaseException:
                pg.close()
                raise
            return cls(pg)
        from stoker.track._sqlite import open_db

        return cls(open_db(where, create))

    def close(self) -> None:
        """Close the connection; idempotent."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Db]:
        try:
            with self._db.transaction():
                yield self._db
        except BaseException:
            self._series.clear()
            self._loaders.clear()
            raise

    # -- writes -----------------------------------------------------------------------
    def create_run(self, **columns: Any) -> int:
        """Insert a 'running' run with these ``runs`` columns; returns its id.

        With a ``uid`` column, creating the same run again returns the first one's id.
        """
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        with self._transaction() as db:
            if "uid" in columns:
                found = db.scalar(
                    "SELECT id FROM runs WHERE uid = ?", (columns["uid"],)
                )
                if found is not None:
                    return int(found)
            return int(
                db.scalar(
                    f"INSERT INTO runs (status, {names}) VALUES ('running', {marks}) "
                    "RETURNING id",
                    tuple(columns.values()),
                )
            )

    def run_id(self, uid: str) -> int | None:
        """The id of the run with this ``uid``, or None."""
        found = self._db.scalar("SELECT id FROM runs WHERE uid = ?", (uid,))
        return None if found is None else int(found)

    def write(self, run_id: int, ch: Changes) -> bool:
        """Apply ``ch`` to a run in one transaction; False if the run was deleted.

        The heartbeat also turns a run a reader wrongly presumed killed (its process
        was suspended, say) back to 'running'. A ``ch.seq`` the run already applied
        is skipped (True).
        """
        with self._transaction() as db:
            if ch.seq is not None and not db.execute(
                "INSERT INTO run_writes (run_id, seq) SELECT id, ? FROM runs "
                "WHERE id = ? ON CONFLICT (run_id, seq) DO NOTHING",
                (ch.seq, run_id),
            ):
                return bool(
                    db.scalar("SELECT 1 FROM runs WHERE id = ?", (run_id,)) == 1
                )
            changed = db.execute(
                "UPDATE runs SET heartbeat_at = ?, "
                "ended_at = CASE status WHEN 'killed' THEN NULL ELSE ended_at END, "
                "status = CASE status WHEN 'killed' THEN 'running' ELSE status END "
                "WHERE id = ?",
                (ch.heartbeat, run_id),
            )
            if changed == 0:
                return False
            if ch.capture:
                sets = ", ".join(f"{k} = ?" for k in ch.capture)
                db.execute(
                    f"UPDATE runs SET {sets} WHERE id = ?",
                    (*ch.capture.values(), run_id),
                )
            for table, rows in (("params", ch.params), ("tags", ch.tags)):
                db.executemany(
                    f"INSERT INTO {table} (run_id, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                    [(run_id, k, v) for k, v in rows],
                )
            for key, started, settings in ch.loader_starts:
                db.execute(
                    "INSERT INTO loaders (run_id, loader_key, started_at, settings) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (run_id, loader_key) DO NOTHING",
                    (run_id, key, started, settings),
                )
            db.insert_rows(
                "points",
                ("series_id", "step", "time", "value"),
                self._point_rows(run_id, ch.points),
            )
            db.insert_rows(
                "loader_batches",
                (
                    "loader_id",
                    "epoch",
                    "position",
                    "source_index",
                    "time",
                    "wait_s",
                    "produce_s",
                    "queue_depth",
                    "nbytes",
                ),
                [(self._loader_id(run_id, b[0], b[4]), *b[1:]) for b in ch.batches],
            )
            db.executemany(
                "INSERT INTO loader_epochs (loader_id, epoch, time, summary) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (loader_id, epoch) DO UPDATE SET "
                "time = excluded.time, summary = excluded.summary",
                [(self._loader_id(run_id, k, t), e, t, s) for k, e, t, s in ch.epochs],
            )
            for key, summary, closed in ch.summaries:
                db.execute(
                    "UPDATE loaders SET summary = ?, "
                    "closed_at = coalesce(?, closed_at) WHERE id = ?",
                    (summary, closed, self._loader_id(run_id, key, time.time())),
                )
            if ch.final:
                db.execute(
                    "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                    (*ch.final, run_id),
                )
        return True

    def _point_rows(
        self, run_id: int, points: list[tuple[str, str, int, float, float]]
    ) -> list[tuple[int, int, float, float | None]]:
        ids: dict[tuple[str, str], int] = {}
        rows = []
        for kind, key, step, t, value in points:
            sid = ids.get((kind, key))
            if sid is None:
                sid = ids[kind, key] = self._series_id(run_id, kind, key)
            # NaN is stored as NULL on both databases (SQLite does it anyway;
            # PostgreSQL would keep a NaN that sorts above every number).
            rows.append((sid, step, t, None if math.isnan(value) else value))
        return rows

    def _series_id(self, run_id: int, kind: str, key: str) -> int:
        k = (run_id, kind, key)
        sid = self._series.get(k)
        if sid is None:
            self._db.execute(
                "INSERT INTO series (run_id, kind, key) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, kind, key) DO NOTHING",
                k,
            )
            sid = self._db.scalar(
                "SELECT id FROM series WHERE run_id = ? AND kind = ? AND key = ?", k
            )
            self._series[k] = sid
        return sid

    def _loader_id(self, run_id: int, key: str, started: float) -> int:
        k = (run_id, key)
        lid = self._loaders.get(k)
        if lid is None:
            # A loader whose start was never reported still gets a row.
            self._db.execute(
                "INSERT INTO loaders (run_id, loader_key, started_at, settings) "
                "VALUES (?, ?, ?, '{}') ON CONFLICT (run_id, loader_key) DO NOTHING",
                (run_id, key, started),
            )
            lid = self._db.scalar(
                "SELECT id FROM loaders WHERE run_id = ? AND loader_key = ?", k
            )
            self._loaders[k] = lid
        return lid

    def mark_killed(self, run_id: int, heartbeat_at: float) -> bool:
        """Mark a 'running' run killed if its heartbeat is still ``heartbeat_at``."""
        with self._transaction() as db:
            return (
                db.execute(
                    "UPDATE runs SET status = 'killed', ended_at = heartbeat_at "
                    "WHERE id = ? AND status = 'running' AND heartbeat_at = ?",
                    (run_id, heartbeat_at),
                )
                > 0
            )

    def delete_run(self, run_id: int) -> bool:
        """Delete a run and all it owns; False if there was no such run."""
        with self._transaction() as db:
            return db.execute("DELETE FROM runs WHERE id = ?", (run_id,)) > 0

    def set_tags(self, run_id: int, tags: dict[str, str | None]) -> bool:
        """Set (or, for None, remove) tags of a run; False if there is no such run.

        Unlike :meth:`write` it leaves the heartbeat alone: an edit on the dashboard
        says nothing about whether the run's process lives.
        """
        with self._transaction() as db:
            if not db.rows("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
                return False
            for key, value in tags.items():
                db.execute(
                    "DELETE FROM tags WHERE run_id = ? AND key = ?", (run_id, key)
                )
                if value is not None:
                    db.execute(
                        "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)",
                        (run_id, key, value),
                    )
        return True
