"""Which data a loader read: a short fingerprint recorded with its settings.

Rule: the fingerprint is a hash of the source's class name and length and, when the
source lists its files (a ``files`` attribute: a sequence of paths, which the loader
passes on as ``source_files``), of each file's path, size and modification time. It
is computed on the run's writer thread, never the training thread: statting a
million files takes seconds. The list itself is not stored, only its length.

Why size and mtime rather than content: hashing the bytes of a dataset would read
all of it again; a changed file almost always changes its size or mtime. Two runs with
different fingerprints read different data; equal fingerprints are strong evidence,
not proof, that they read the same.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any


def with_fingerprint(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` plus ``data_fingerprint`` (and ``source_file_count``)."""
    out = dict(settings)
    files = out.pop("source_files", None)
    h = hashlib.sha256()
    h.update(f"{out.get('source_type')}\0{out.get('length')}\0".encode())
    if files is not None:
        count = 0
        for f in files:
            path = os.fspath(f)
            try:
                st = os.stat(path)
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
            except OSError:
                h.update(f"{path}\0missing\0".encode())
            count += 1
        out["source_file_count"] = count
    out["data_fingerprint"] = h.hexdigest()[:16]
    return out
