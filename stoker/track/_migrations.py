"""The store's schema as numbered migrations, applied in order and never edited.

Migration ``n`` (1-based) takes a store from schema ``n - 1`` to ``n``; the schema
number lives in SQLite's ``PRAGMA user_version`` and the file is marked as a stoker
store by ``PRAGMA application_id``. The statements are SQLite's; a PostgreSQL store
runs the same list, each statement translated by ``_postgres.ddl`` (types only). A
released migration is never changed: a new column or table is a new entry at the end
of :data:`MIGRATIONS`.

Why the tables look as they do:

- every metric point is kept (``points``); the dashboard downsamples with min/max
  buckets at read time, so a one-step spike is never averaged away;
- a point's value is NULL when it was NaN: SQLite turns a bound NaN into NULL, and
  the readers turn it back, so a diverging loss stays visible;
- metric names live once in ``series`` and points refer to them by integer, which
  keeps a long run's table small; ``series.kind`` separates the user's metrics from
  stoker's own process samples, so no metric name is reserved;
- everything a run owns is deleted with it (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

# "STKR" as a big-endian int32: marks a file as a stoker store.
APPLICATION_ID = 0x53544B52

_V1 = (
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'finished', 'failed', 'killed')),
        created_at REAL NOT NULL,
        ended_at REAL,
        heartbeat_at REAL NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_started_at REAL,
        error TEXT,
        command TEXT,
        executable TEXT,
        cwd TEXT,
        git_root TEXT,
        git_commit TEXT,
        git_branch TEXT,
        git_dirty INTEGER,
        git_diff BLOB,
        git_note TEXT,
        environment TEXT
    )""",
    "CREATE INDEX runs_status ON runs (status)",
    """CREATE TABLE params (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE tags (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('metric', 'system')),
        key TEXT NOT NULL,
        UNIQUE (run_id, kind, key)
    )""",
    """CREATE TABLE points (
        series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        time REAL NOT NULL,
        value REAL
    )""",
    "CREATE INDEX points_series_step ON points (series_id, step)",
    """CREATE TABLE loaders (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        loader_key TEXT NOT NULL,
        started_at REAL NOT NULL,
        closed_at REAL,
        settings TEXT NOT NULL,
        summary TEXT,
        UNIQUE (run_id, loader_key)
    )""",
    """CREATE TABLE loader_batches (
        loader_id INTEGER NOT NULL REFERENCES loaders (id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        position INTEGER NOT NULL,
        source_index INTEGER NOT NULL,
        time REAL NOT NULL,
        wait_s REAL NOT NULL,
        produce_s REAL NOT NULL,
        queue_depth INTEGER NOT NULL,
        nbytes INTEGER NOT NULL
    )""",
    "CREATE INDEX loader_batches_loader ON loader_batches (loader_id, epoch)",
    """CREATE TABLE loader_epochs (
        loader_id INTEGER NOT NULL REFERENCES loaders (id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        time REAL NOT NULL,
        summary TEXT NOT NULL,
        PRIMARY KEY (loader_id, epoch)
    ) WITHOUT ROWID""",
)

# Version 2: the team store and sweeps.
# - ``runs.uid``: a run's own id, made by the run, so a run that starts while its
#   server is down can be created later from its spool, and copied between stores
#   (push, pull) exactly once;
# - ``run_writes``: the sequence number of every write transaction a run applied, so
#   a write re-sent after a lost acknowledgement or from the spool is applied once;
# - ``sweeps`` and ``sweep_trials``: a sweep's grid and what each trial did. A trial
#   keeps its error and log tail even when it died before it could track a run.
_V2 = (
    "ALTER TABLE runs ADD COLUMN uid TEXT",
    "CREATE UNIQUE INDEX runs_uid ON runs (uid)",
    """CREATE TABLE run_writes (
        run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE sweeps (
        name TEXT NOT NULL PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'stopped')),
        created_at REAL NOT NULL,
        ended_at REAL,
        command TEXT NOT NULL,
        grid TEXT NOT NULL,
        options TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE sweep_trials (
        sweep TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
        trial TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'finished', 'failed', 'stopped')),
        run_id INTEGER,
        started_at REAL,
        ended_at REAL,
        returncode INTEGER,
        error TEXT,
        log_tail TEXT,
        PRIMARY KEY (sweep, trial)
    ) WITHOUT ROWID""",
)

# Version 3: a trial may be 'killed': its Ray node was lost (``stoker sweep --ray``),
# which is neither the trial's failure nor the user's stop, and ``--resume`` runs it
# again. A CHECK cannot be altered in SQLite: the table is rebuilt (PostgreSQL runs
# the same statements), its columns in the same order.
_V3 = (
    """CREATE TABLE sweep_trials_v3 (
        sweep TEXT NOT NULL REFERENCES sweeps (name) ON DELETE CASCADE,
        trial TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('running', 'finished', 'failed', 'stopped', 'killed')),
        run_id INTEGER,
        started_at REAL,
        ended_at REAL,
        returncode INTEGER,
        error TEXT,
        log_tail TEXT,
        PRIMARY KEY (sweep, trial)
    ) WITHOUT ROWID""",
    "INSERT INTO sweep_trials_v3 SELECT * FROM sweep_trials",
    "DROP TABLE sweep_trials",
    "ALTER TABLE sweep_trials_v3 RENAME TO sweep_trials",
)

# Entry i holds the statements of migration i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
LATEST = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The store's schema number (0 for a file no migration has touched)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def application_id(conn: sqlite3.Connection) -> int:
    """The file's ``PRAGMA application_id`` (:data:`APPLICATION_ID` for a store)."""
    return int(conn.execute("PRAGMA application_id").fetchone()[0])


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> int:
    """Apply the migrations the store lacks, all in one write transaction.

    The connection must be in autocommit mode (``isolation_level=None``). The
    version is re-read inside ``BEGIN IMMEDIATE`` so that several processes opening a
    new store at once migrate it exactly once.

    Args:
        conn: an open connection to a store (or to an empty file).
        migrations: the statements of each migration, in order.

    Returns:
        The schema number the store has now.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        for number in range(current + 1, len(migrations) + 1):
            for statement in migrations[number - 1]:
                conn.execute(statement)
        if current < len(migrations):
            # PRAGMAs take no bound parameters; both values are our own integers.
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {len(migrations)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, len(migrations))
