"""The store's reads: every query of a run's rows, on SQLite and PostgreSQL alike.

Split from ``_store.py`` (the writes and the lifecycle), whose ``Store`` class
inherits these methods; both go through the one ``Db`` layer, so the SQL here is the
portable subset ``_store.py``'s docstring lists.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stoker.track._db import Db

_RUN_COLUMNS = (
    "id, uid, name, status, created_at, ended_at, heartbeat_at, host, pid, "
    "pid_started_at, error, command, executable, cwd, git_root, git_commit, "
    "git_branch, git_dirty, git_note, environment, length(git_diff) AS git_diff_bytes"
)


class StoreReads:
    """The read half of :class:`~stoker.track._store.Store`."""

    _db: Db

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._db.rows(sql, args)

    def runs(
        self,
        *,
        ids: Sequence[int] | None = None,
        statuses: Sequence[str] = (),
        since: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Run rows, newest first, without the diff (``git_diff_bytes`` gives size)."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if ids is not None:
            where.append(self._db.one_of("id", len(ids)))
            args.extend(self._db.values_of(ids))
        if statuses:
            where.append(self._db.one_of("status", len(statuses)))
            args.extend(self._db.values_of(statuses))
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
        sql += "ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._rows(sql, args)
        for r in rows:
            r["command"] = json.loads(r["command"]) if r["command"] else None
            r["environment"] = json.loads(r["environment"] or "{}")
        return rows

    def git_diff(self, run_id: int) -> bytes | None:
        """The uncommitted diff recorded at the run's start (None if none)."""
        rows = self._rows("SELECT git_diff FROM runs WHERE id = ?", (run_id,))
        return rows[0]["git_diff"] if rows else None

    def key_values(
        self, table: str, run_ids: Sequence[int]
    ) -> dict[int, dict[str, Any]]:
        """``params`` (JSON-decoded) or ``tags`` of each run."""
        assert table in ("params", "tags")
        out: dict[int, dict[str, Any]] = {i: {} for i in run_ids}
        match = self._db.one_of("run_id", len(run_ids))
        sql = f"SELECT run_id, key, value FROM {table} WHERE {match}"
        for r in self._rows(sql + " ORDER BY key", self._db.values_of(run_ids)):
            value = json.loads(r["value"]) if table == "params" else r["value"]
            out[r["run_id"]][r["key"]] = value
        return out

    def series_stats(
        self, run_ids: Sequence[int], kind: str
    ) -> dict[int, dict[str, Any]]:
        """Per run and key: last point (highest step, then latest) and aggregates."""
        out: dict[int, dict[str, Any]] = {i: {} for i in run_ids}
        match = self._db.one_of("s.run_id", len(run_ids))
        sql = f"""
            SELECT s.run_id, s.key, count(*) AS count,
                   count(*) - count(p.value) AS nan_count, min(p.value) AS min,
                   max(p.value) AS max, avg(p.value) AS mean,
                   (SELECT q.rowid FROM points q WHERE q.series_id = s.id
                    ORDER BY q.step DESC, q.rowid DESC LIMIT 1) AS last_rowid
            FROM series s JOIN points p ON p.series_id = s.id
            WHERE {match} AND s.kind = ?
            GROUP BY s.id ORDER BY s.key"""
        stats = self._rows(sql, (*self._db.values_of(run_ids), kind))
        if not stats:
            return out
        last_ids = [r["last_rowid"] for r in stats]
        last = {
            r["rowid"]: r
            for r in self._rows(
                "SELECT rowid, step, time, value FROM points "
                f"WHERE {self._db.one_of('rowid', len(last_ids))}",
                self._db.values_of(last_ids),
            )
        }
        for r in stats:
            p = last[r.pop("last_rowid")]
            run_id, key = r.pop("run_id"), r.pop("key")
            out[run_id][key] = {
                "last": _nan(p["value"]),
                "step": p["step"],
                "time": p["time"],
                **r,
            }
        return out

    def points(self, run_id: int) -> list[dict[str, Any]]:
        """Every point of a run: kind, key, step, time, value (NaN restored)."""
        rows = self._rows(
            "SELECT s.kind, s.key, p.step, p.time, p.value FROM points p "
            "JOIN series s ON s.id = p.series_id WHERE s.run_id = ? "
            "ORDER BY s.kind, s.key, p.step, p.rowid",
            (run_id,),
        )
        for r in rows:
            r["value"] = _nan(r["value"])
        return rows

    def buckets(
        self, run_id: int, kind: str, key: str, count: int
    ) -> list[dict[str, Any]]:
        """One series in at most ``count`` step buckets, each with its min and max.

        A bucket's min and max are the extremes of every point in it, so a spike
        survives downsampling; ``nan_count`` says whether any point was NaN.
        """
        rows = self._rows(
            "SELECT min(p.step) AS lo, max(p.step) AS hi FROM points p "
            "JOIN series s ON s.id = p.series_id "
            "WHERE s.run_id = ? AND s.kind = ? AND s.key = ?",
            (run_id, kind, key),
        )
        lo, hi = rows[0]["lo"], rows[0]["hi"]
        if lo is None:
            return []
        width = max(1, -(-(hi - lo + 1) // max(count, 1)))  # ceil division
        return self._rows(
            "SELECT min(p.step) AS step_min, max(p.step) AS step_max, "
            "min(p.value) AS min, max(p.value) AS max, avg(p.value) AS mean, "
            "count(*) AS count, count(*) - count(p.value) AS nan_count "
            "FROM points p JOIN series s ON s.id = p.series_id "
            "WHERE s.run_id = ? AND s.kind = ? AND s.key = ? "
            "GROUP BY (p.step - ?) / ? ORDER BY step_min",
            (run_id, kind, key, lo, width),
        )

    def loaders(self, run_id: int) -> list[dict[str, Any]]:
        """The run's loaders: settings, last summary, and aggregates of the batches."""
        rows = self._rows(
            "SELECT l.id, l.loader_key, l.started_at, l.closed_at, l.settings, "
            "l.summary, (SELECT count(*) FROM loader_epochs e "
            "WHERE e.loader_id = l.id) AS epochs_recorded, "
            "count(b.loader_id) AS batches_recorded, avg(b.wait_s) AS mean_wait_s, "
            "max(b.wait_s) AS max_wait_s, avg(b.produce_s) AS mean_produce_s, "
            "avg(b.queue_depth) AS mean_queue_depth "
            "FROM loaders l LEFT JOIN loader_batches b ON b.loader_id = l.id "
            "WHERE l.run_id = ? GROUP BY l.id ORDER BY l.id",
            (run_id,),
        )
        for r in rows:
            r.pop("id")
            r["settings"] = json.loads(r["settings"])
            r["summary"] = json.loads(r["summary"]) if r["summary"] else None
        return rows

    def loader_batches(self, run_id: int) -> list[dict[str, Any]]:
        """Every recorded batch of every loader of the run, in delivery order."""
        return self._rows(
            "SELECT l.loader_key, b.epoch, b.position, b.source_index, b.time, "
            "b.wait_s, b.produce_s, b.queue_depth, b.nbytes FROM loader_batches b "
            "JOIN loaders l ON l.id = b.loader_id WHERE l.run_id = ? "
            "ORDER BY b.rowid",
            (run_id,),
        )

    def loader_epochs(self, run_id: int) -> list[dict[str, Any]]:
        """Each loader's end-of-epoch summaries."""
        rows = self._rows(
            "SELECT l.loader_key, e.epoch, e.time, e.summary FROM loader_epochs e "
            "JOIN loaders l ON l.id = e.loader_id WHERE l.run_id = ? "
            "ORDER BY l.id, e.epoch",
            (run_id,),
        )
        for r in rows:
            r["summary"] = json.loads(r["summary"])
        return rows


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value
