"""Finding, checking and opening the SQLite file of a store.

What is refused, before SQLite may write anything: a directory, a file that is
not SQLite (its header is read first), an SQLite database that is not a stoker store
(``PRAGMA application_id``; an empty database is fine), a store from a newer stoker,
and for a tracking run a file or directory it may not write. Readers open a store
they cannot write read-only (and, when even the WAL's ``-shm`` file cannot be made,
as immutable). A store is switched to WAL and migrated on first write-open.
(A ``postgresql://`` URL never gets here: ``Store.open`` sends it to ``_postgres``;
another URL is refused by ``_url.resolve``.)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track import _migrations as mig
from stoker.track._url import DEFAULT_STORE, STORE_ENV, resolve

__all__ = ["DEFAULT_STORE", "STORE_ENV", "SqliteDb", "open_db", "resolve_path"]
# How long one statement waits for another process's write lock before failing; a
# write transaction lasts milliseconds, so 10 s only runs out on a stuck store.
_BUSY_TIMEOUT_S = 10.0
# How long opening retries switching a new store to WAL while others open it too.
_OPEN_TIMEOUT_S = 30.0
_SQLITE_HEADER = b"SQLite format 3\x00"


def resolve_path(store: str | os.PathLike[str] | None = None) -> Path:
    """The store's absolute path: ``store``, else ``$STOKER_STORE``, else the default.

    The default is ``.stoker/store.db`` under the current working directory. A
    ``postgresql://`` URL is returned as it is (a ``str``; see ``_url.resolve``).

    Raises:
        StoreError: ``store`` is a URL of another database.
    """
    return resolve(store)  # type: ignore[return-value]


def _refuse_foreign_file(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a stoker store (it is not an SQLite file); it was left "
            "untouched. Pass store= or set STOKER_STORE to a new path."
        )


def _connect(path: Path, mode: str | None) -> sqlite3.Connection:
    uri = path.as_uri()
    if mode == "ro":
        uri += "?mode=ro"
    elif mode == "immutable":
        uri += "?immutable=1"
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,  # handed to the writer thread, used by one
        )
    except sqlite3.Error as e:
        raise StoreError(
            f"cannot open the store {path}: {e}. Check that its directory exists "
            "and is writable, or pass store= / set STOKER_STORE to another path."
        ) from e
    conn.row_factory = sqlite3.Row
    return conn


def _check_identity(conn: sqlite3.Connection, path: Path) -> None:
    # One read transaction: another process may be creating the store right now,
    # and its schema and its marks must be seen together or not at all.
    conn.execute("BEGIN")
    try:
        app, version = mig.application_id(conn), mig.schema_version(conn)
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        conn.execute("COMMIT")
    if app == mig.APPLICATION_ID:
        if version > mig.LATEST:
            raise StoreError(
                f"{path} was written by a newer stoker (schema {version}; this "
                f"stoker knows up to {mig.LATEST}): upgrade stoker to use it"
            )
        return
    if app == 0 and version == 0 and tables == 0:
        return  # an empty SQLite database: a new store
    raise StoreError(
        f"{path} is an SQLite database but not a stoker store (application_id "
        f"{app:#x}, {tables} schema objects); it was left untouched. Pass store= "
        "or set STOKER_STORE to a new path."
    )


def use_wal(conn: sqlite3.Connection, path: Path) -> None:
    deadline = time.monotonic() + _OPEN_TIMEOUT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if str(mode).lower() != "wal":
        raise StoreError(
            f"{path}: SQLite cannot use its WAL journal there (mode {mode!r}); put "
            "the store on a local disk, not a network file system"
        )
    conn.execute("PRAGMA synchronous = NORMAL")


class SqliteDb:
    """An open SQLite store file (see ``_db.Db``); one thread uses it at a time.

    Each write is one ``BEGIN IMMEDIATE`` transaction: it takes the write lock first
    (waiting up to the busy timeout) instead of upgrading a read lock mid-way, which
    SQLite refuses at once with "database is locked".
    """

    dialect = "sqlite"

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.where = path
        self.readonly = readonly
        self.conn = conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(explain(self.where, e)) from e

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._guard():
            return self.conn.execute(sql, args).rowcount

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self._guard():
            row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._guard():
            self.conn.executemany(sql, rows)

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._guard():
            return [dict(r) for r in self.conn.execute(sql, args)]

    def one_of(self, column: str, count: int) -> str:
        return f"{column} IN ({', '.join('?' * count)})"

    def values_of(self, values: Sequence[Any]) -> list[Any]:
        return list(values)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" * len(columns))
        self.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.conn
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.conn.close()


def open_db(store: Path, create: bool) -> SqliteDb:
    """Find, check and open a store's file.

    See :meth:`stoker.track.Store.open` for ``create`` and the errors.
    """
    path = store
    if path.is_dir():
        raise StoreError(
            f"{path} is a directory; the store is a file, e.g. {path / 'store.db'}"
        )
    if path.exists():
        _refuse_foreign_file(path)
    elif not create:
        raise StoreError(
            f"no stoker store at {path}: nothing has been tracked there yet. "
            "Pass --store / store= or set STOKER_STORE to the store's path."
        )
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the store's directory {path.parent}: "
                f"{e.strerror}. Pass store= or set STOKER_STORE to a writable "
                "path."
            ) from e
    # SQLite writes the -wal and -shm files beside the store: the directory too
    # must be writable.
    writable = os.access(path.parent, os.W_OK) and (
        not path.exists() or os.access(path, os.W_OK)
    )
    if create and not writable:
        raise StoreError(
            f"the store {path} is read-only (no write permission on it or its "
            "directory); pass store= or set STOKER_STORE to a writable path"
        )
    readonly = not writable
    conn = _connect(path, "ro" if readonly else None)
    try:
        try:
            _check_identity(conn, path)
        except sqlite3.OperationalError:
            if not readonly:
                raise
            # A WAL store whose -shm file cannot be created: read it as
            # immutable (nobody can be writing a store nobody may write).
            conn.close()
            conn = _connect(path, "immutable")
            _check_identity(conn, path)
        if not readonly:
            use_wal(conn, path)
            if mig.schema_version(conn) < mig.LATEST:
                mig.migrate(conn)
        elif 0 < mig.schema_version(conn) < mig.LATEST:
            raise StoreError(
                f"{path} is from an older stoker (schema {mig.schema_version(conn)}) "
                "and read-only here, so it cannot be upgraded; open it once where "
                "it is writable (any `stoker runs` does), or copy it"
            )
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(explain(path, e)) from e
    except BaseException:
        conn.close()
        raise
    return SqliteDb(path, conn, readonly)


def explain(path: Path, e: sqlite3.Error) -> str:
    text = str(e)
    if "readonly" in text or "read-only" in text:
        return (
            f"the store {path} is read-only ({text}); pass store= or set "
            "STOKER_STORE to a writable path"
        )
    if "locked" in text or "busy" in text:
        return (
            f"the store {path} stayed locked by another process for more than "
            f"{_BUSY_TIMEOUT_S:g} s ({text}); is a process stuck holding it?"
        )
    if "not a database" in text or "malformed" in text:
        return (
            f"{path} is damaged or not a stoker store ({text}); it was left as it "
            "is. Pass store= or set STOKER_STORE to a new path."
        )
    return f"the store {path} failed: {text}"
