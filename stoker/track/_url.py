"""Where a store lives: an SQLite file path or a ``postgresql://`` URL; and masking.

Rule: a store is named by one string, taken from ``store=``, else ``$STOKER_STORE``,
else ``.stoker/store.db``. A string with ``://`` is a URL: ``postgresql://`` (or
``postgres://``) is the team store, any other scheme is refused with the fix. Every
other string is a file path.

Rule: a password never leaves this process in clear. :func:`mask` replaces the
password of every PostgreSQL URL in a text with ``***``; everything that prints, logs,
raises or records a URL or a command line goes through it (the run's captured
command, its error, a spool's note of its store, every ``StoreError``). Why: URLs with
passwords end up in shell history anyway, but a tracking store is read by the whole
team, so it must not be where a password is collected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_STORE = Path(".stoker") / "store.db"
STORE_ENV = "STOKER_STORE"
_SCHEMES = ("postgresql", "postgres")
# scheme://user:password@ -> the password is everything between ':' and '@'
# in the authority part (no '/' in between).
_PASSWORD = re.compile(r"([a-z][\w+.-]*://[^:/@\s]*:)([^@\s/]*)(@)", re.I)
# password=... in a libpq keyword string or a query parameter.
_PASSWORD_KW = re.compile(r"(\bpassword\s*=\s*)('[^']*'|[^&\s]+)", re.I)


def mask(text: str) -> str:
    """``text`` with the password of each URL in it replaced by ``***``."""
    if "://" not in text and "password" not in text.lower():
        return text
    return _PASSWORD_KW.sub(r"\1***", _PASSWORD.sub(r"\1***\3", text))


def is_url(store: str | os.PathLike[str] | None) -> bool:
    """Whether ``store`` (a path or URL; None: the default) names a PostgreSQL store."""
    return isinstance(resolve(store), str)


def resolve(store: str | os.PathLike[str] | None = None) -> Path | str:
    """The store: an absolute :class:`Path`, or a PostgreSQL URL (unmasked) as str.

    Raises:
        StoreError: a URL whose scheme is not PostgreSQL's.
    """
    from stoker._errors import StoreError

    if store is None:
        store = os.environ.get(STORE_ENV) or DEFAULT_STORE
    text = os.fspath(store)
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise StoreError(
                f"store {mask(text)!r}: a store is an SQLite file path (such as "
                "'.stoker/store.db') or a postgresql://user:password@host:5432/db URL"
            )
        return text
    return Path(text).expanduser().absolute()
