"""Moving runs between stores: sending spools (``runs sync``), ``push`` and ``pull``.

Rule: every move is idempotent, so it may be repeated or interrupted at any point:

- a spool's writes keep their sequence numbers and the run is found by its uid, so
  sending a spool twice, or after its own writer sent part of it, adds nothing twice;
  a spool whose run has not ended and whose process still runs on this host is left
  to that process's writer;
- a copied run is found in the target by its uid, and its whole content is one write
  with sequence number 1: copying it again is a no-op. A run that is still running
  is not copied (its data is not complete yet); copy it once it ended.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stoker._errors import StoreError
from stoker.track._liveness import host, process_alive
from stoker.track._spool import Spool, spool_dir
from stoker.track._store import Changes, Store

StorePath = str | os.PathLike[str] | None
_COPIED_COLUMNS = (
    "name",
    "created_at",
    "heartbeat_at",
    "host",
    "pid",
    "pid_started_at",
    "executable",
    "cwd",
)
_CAPTURED_COLUMNS = ("git_root", "git_commit", "git_branch", "git_dirty", "git_note")


def sync_spools(
    store: StorePath = None, *, spool: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Send every spool in the spool directory to the store, then delete it.

    Args:
        store: the store to send to; default ``$STOKER_STORE``.
        spool: the spool directory; default ``$STOKER_SPOOL`` or ``.stoker/spool``.

    Returns:
        One dict per spool: ``spool`` (its path), ``uid``, ``run_id``, ``writes``
        (how many were sent), ``status`` ('sent', or 'live' for a run still
        running here, which sends its own spool) and ``spooled_for`` (the store the
        run was started with, password masked).

    Raises:
        StoreError: the store cannot be reached or written (nothing is lost: what
            was not sent stays in the spools).
    """
    paths = sorted(spool_dir(spool).glob("*.db"))
    out: list[dict[str, Any]] = []
    if not paths:
        return out
    with Store.open(store, create=True) as st:
        here = host()
        for path in paths:
            sp = Spool(path)
            try:
                meta = sp.meta()
                row = {
                    "spool": str(path),
                    "uid": meta.get("uid"),
                    "run_id": None,
                    "writes": 0,
                    "spooled_for": meta.get("store"),
                }
                if (
                    not meta.get("ended")
                    and meta.get("host") == here
                    and process_alive(meta.get("pid", 0), meta.get("pid_started_at"))
                ):
                    out.append({**row, "status": "live"})
                    continue
                run_id = st.create_run(**meta["columns"])
                sent = 0
                for ch in sp.pending():
                    st.write(run_id, ch)
                    sp.acknowledge(ch.seq or 0)
                    sent += 1
                out.append({**row, "run_id": run_id, "writes": sent, "status": "sent"})
            finally:
                sp.close()
    return out


def _uid(run: dict[str, Any]) -> str:
    """A run's uid; runs recorded before uids existed get one from their identity."""
    if run.get("uid"):
        return str(run["uid"])
    key = json.dumps([run["host"], run["pid"], run["created_at"], run["name"]])
    return "legacy-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _content(st: Store, run: dict[str, Any]) -> Changes:
    """Everything a run recorded, as one write (sequence number 1)."""
    run_id = run["id"]
    ch = Changes(heartbeat=run["heartbeat_at"], seq=1)
    ch.params = [
        (k, json.dumps(v)) for k, v in st.key_values("params", [run_id])[run_id].items()
    ]
    ch.tags = list(st.key_values("tags", [run_id])[run_id].items())
    ch.points = [
        (p["kind"], p["key"], p["step"], p["time"], p["value"])
        for p in st.points(run_id)
    ]
    for ld in st.loaders(run_id):
        key = ld["loader_key"]
        ch.loader_starts.append((key, ld["started_at"], json.dumps(ld["settings"])))
        if ld["summary"] is not None:
            ch.summaries.append((key, json.dumps(ld["summary"]), ld["closed_at"]))
    ch.batches = [
        (
            b["loader_key"],
            b["epoch"],
            b["position"],
            b["source_index"],
            b["time"],
            b["wait_s"],
            b["produce_s"],
            b["queue_depth"],
            b["nbytes"],
        )
        for b in st.loader_batches(run_id)
    ]
    ch.epochs = [
        (e["loader_key"], e["epoch"], e["time"], json.dumps(e["summary"]))
        for e in st.loader_epochs(run_id)
    ]
    capture = {k: run[k] for k in _CAPTURED_COLUMNS}
    capture["environment"] = json.dumps(run["environment"])
    capture["git_diff"] = st.git_diff(run_id)
    ch.capture = capture
    ch.final = (run["status"], run["ended_at"], run["error"])
    return ch


def copy_runs(
    source: StorePath,
    target: StorePath,
    run_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Copy ended runs from one store to another (``runs push`` and ``pull``).

    Args:
        source: the store to read.
        target: the store to write (created if missing).
        run_ids: the runs to copy (ids in ``source``); default every ended run.

    Returns:
        One dict per run considered: ``id`` (in the source), ``uid``, ``target_id``
        and ``status`` ('copied', 'present' or 'running', which is skipped).

    Raises:
        StoreError: a store cannot be opened, or a given run does not exist.
    """
    from stoker.track._query import _reap

    out: list[dict[str, Any]] = []
    with Store.open(source) as src, Store.open(target, create=True) as dst:
        if Path(str(src.path)) == Path(str(dst.path)):
            raise StoreError(f"the source and the target are the same store {src.path}")
        runs = src.runs(ids=list(run_ids) if run_ids is not None else None)
        if run_ids is not None:
            missing = sorted(set(run_ids) - {r["id"] for r in runs})
            if missing:
                raise StoreError(f"no run {missing[0]} in {src.path}")
        _reap(src, runs)
        for run in reversed(runs):  # oldest first: ids keep their order in the target
            uid = _uid(run)
            row = {"id": run["id"], "uid": uid, "target_id": dst.run_id(uid)}
            if run["status"] == "running":
                out.append({**row, "status": "running"})
                continue
            extra = src.runs(ids=[run["id"]])[0]
            columns = {k: extra[k] for k in _COPIED_COLUMNS}
            columns["command"] = (
                json.dumps(extra["command"]) if extra["command"] is not None else None
            )
            status = "present" if row["target_id"] is not None else "copied"
            target_id = dst.create_run(uid=uid, **columns)
            dst.write(target_id, _content(src, run))
            out.append({**row, "target_id": target_id, "status": status})
    return out
