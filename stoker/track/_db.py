"""The one thin layer between the store's SQL and a database: SQLite or PostgreSQL.

Rule: the store's SQL is written once, in the portable subset both databases run
(``?`` placeholders, ``INSERT ... ON CONFLICT``, ``RETURNING``, ``count(*) -
count(x)`` rather than summing booleans, ``WHERE 1 = 1``), and every statement goes
through a :class:`Db`. A Db translates what differs and nothing else:

- placeholders: ``?`` becomes ``%s`` for psycopg (:func:`pyformat`);
- bulk inserts: :meth:`Db.insert_rows` is ``executemany`` on SQLite and ``COPY`` on
  PostgreSQL (ten times faster there, and the points table is the big one);
- a list of values to match (:meth:`Db.one_of`): ``IN (?, ?, ...)`` on SQLite, one
  array parameter (``= ANY(?)``) on PostgreSQL, which parses and plans 10,000 ids
  much faster than 10,000 parameters;
- the schema's types (``_postgres.ddl``): ``REAL`` is ``DOUBLE PRECISION``, ``BLOB``
  is ``BYTEA``, and a table SQLite gives a hidden ``rowid`` gets a real ``rowid``
  identity column, so queries may order by ``rowid`` on both;
- errors: a driver's error becomes :class:`StoreError` with the fix, or
  :class:`StoreUnavailable` when the server cannot be reached, which the writer thread
  answers by spooling instead of failing.

Why not SQLAlchemy Core + Alembic (MLflow's choice): see docs/team.md. In short, the
SQL is small and already portable, ``import stoker.track`` must stay stdlib-only, and
the writer's hot path wants COPY, which Core does not give.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from stoker._errors import StoreError


class StoreUnavailable(StoreError):
    """The store's server cannot be reached (down, unreachable, refused login)."""


class Db(Protocol):
    """An open connection to a store's database, used by one thread at a time."""

    dialect: str  # 'sqlite' or 'postgresql'
    readonly: bool

    @property
    def where(self) -> Path | str:
        """The file, or the URL with its password masked."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the rows it changed."""

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None without a row)."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row."""

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query, as dicts."""

    def one_of(self, column: str, count: int) -> str:
        """A condition: ``column`` equals one of ``count`` values (see values_of)."""

    def values_of(self, values: Sequence[Any]) -> list[Any]:
        """The parameters :meth:`one_of` expects for ``values``."""

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Append rows to a table, the fastest way the database has."""

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction: all of it or nothing."""

    def close(self) -> None:
        """Close; idempotent."""


@functools.lru_cache(maxsize=512)
def pyformat(sql: str) -> str:
    """``sql`` with ``?`` placeholders as ``%s`` (and ``%`` as ``%%``) for psycopg.

    Quoted strings and identifiers are left as they are.
    """
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)
