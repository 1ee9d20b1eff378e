"""The dashboard's options: where the store is, where to listen, what is allowed.

The rule: listening anywhere but this machine's loopback needs a token, and the
options refuse to be built otherwise. Why: the dashboard shows commands, diffs and
environments and can re-run commands; on a shared network that is a way in. On
loopback the token is still made, because every change (a POST) must carry it: a
page from another site cannot read it, so it cannot forge a change (CSRF).
"""

from __future__ import annotations

import dataclasses
import os
import secrets

# Loopback names: pages are served to these without a token (POSTs still need it).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# The port Jupyter-like tools leave free; stoker's own choice, not a standard.
DEFAULT_PORT = 8765


def new_token() -> str:
    """A fresh random token (32 url-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


@dataclasses.dataclass(frozen=True)
class UIOptions:
    """How ``stoker ui`` serves a store (keyword-only, validated).

    Attributes:
        store: the store's path (None: ``$STOKER_STORE`` or ``.stoker/store.db``).
        host: the address to listen on; loopback by default.
        port: the TCP port (0: any free port).
        allow_rerun: show the re-run button and accept re-runs.
        token: the secret every change (and, off loopback, every request) carries;
            generated when not given.
    """

    store: str | os.PathLike[str] | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allow_rerun: bool = False
    token: str = dataclasses.field(default_factory=new_token, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port}: use 1 to 65535 (or 0 for any)")
        if not self.host:
            raise ValueError("host is empty: use 127.0.0.1 (this machine only)")
        if len(self.token) < 16:
            raise ValueError(
                "token is shorter than 16 characters; leave it out and stoker "
                "generates a strong one"
            )

    @property
    def local(self) -> bool:
        """Whether only this machine can reach the server."""
        return self.host in LOCAL_HOSTS
