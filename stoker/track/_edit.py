"""Edits a person makes to a recorded run: its note and its tags.

The rule: an edit opens the store for writing only for its one transaction, checks
the run exists and the store is writable, and leaves the run's heartbeat and status
alone (a note says nothing about whether the run's process lives). The note is the
tag ``note``, so it travels with the run in exports and in ``stoker runs``.
"""

from __future__ import annotations

from collections.abc import Mapping

from stoker._errors import StoreError
from stoker.track._query import StorePath
from stoker.track._read import NOTE_TAG
from stoker.track._store import Store

# Long enough for a paragraph of what was tried and why; short enough for a page.
MAX_NOTE_CHARS = 10_000
MAX_TAG_CHARS = 200


def set_tags(
    run_id: int, tags: Mapping[str, str | None], store: StorePath = None
) -> None:
    """Set the run's tags (None removes one); the note is the tag ``note``.

    Raises:
        StoreError: no such run, or the store is read-only.
        ValueError: an empty key, or a key or value too long.
    """
    for key, value in tags.items():
        limit = MAX_NOTE_CHARS if key == NOTE_TAG else MAX_TAG_CHARS
        if not key.strip() or len(key) > MAX_TAG_CHARS:
            raise ValueError(f"tag key {key[:40]!r}: 1 to {MAX_TAG_CHARS} characters")
        if value is not None and len(value) > limit:
            raise ValueError(f"tag {key!r} is {len(value)} characters; at most {limit}")
    with Store.open(store) as st:
        if st.readonly:
            raise StoreError(f"the store {st.path} is read-only; cannot edit run tags")
        if not st.set_tags(run_id, dict(tags)):
            raise StoreError(f"no run {run_id} in {st.path} (see `stoker runs`)")


def set_note(run_id: int, note: str, store: StorePath = None) -> None:
    """Replace the run's note (an empty note removes it).

    Raises:
        StoreError: no such run, or the store is read-only.
        ValueError: the note is longer than :data:`MAX_NOTE_CHARS`.
    """
    set_tags(run_id, {NOTE_TAG: note.strip() or None}, store)
