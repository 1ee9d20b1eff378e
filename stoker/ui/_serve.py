"""Serving the dashboard with uvicorn: the URL printed once, a clean stop.

The rule: the URL (with ``?token=`` when the host is not loopback, as Jupyter does)
is printed once, when the socket is bound, and nowhere else: not in logs, not in
the access log (which is off). The server stops on Ctrl-C like any uvicorn app;
a :class:`Server` in a thread (the tests' way) stops with :meth:`Server.stop`.
"""

from __future__ import annotations

import threading
import time
import webbrowser
from collections.abc import Callable

import uvicorn

from stoker.ui._app import create_app
from stoker.ui._options import UIOptions

# How long starting or stopping a server in a thread may take before it is an error.
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def url_of(options: UIOptions, port: int) -> str:
    """The URL to open: loopback as is, any other host with its token."""
    host = f"[{options.host}]" if ":" in options.host else options.host
    if options.host == "0.0.0.0":
        host = "127.0.0.1"  # where the person at this machine opens it
    url = f"http://{host}:{port}/"
    return url if options.local else f"{url}?token={options.token}"


class Server:
    """A dashboard served by uvicorn on a thread; ``stop()`` is idempotent."""

    def __init__(self, options: UIOptions) -> None:
        self.options = options
        config = uvicorn.Config(
            create_app(options),
            host=options.host,
            port=options.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stoker-ui", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as e:  # uvicorn calls sys.exit(1) when it cannot bind
            self._failure = e

    def start(self) -> str:
        """Start serving; returns the URL once the socket is bound."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the dashboard could not listen on {self.options.host}:"
                    f"{self.options.port} (in use? try another --port)"
                )
            time.sleep(0.02)
        return url_of(self.options, self.port)

    @property
    def port(self) -> int:
        """The bound port (the chosen one when ``port=0``)."""
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else self.options.port

    def stop(self) -> None:
        """Stop serving and join the thread (up to a timeout)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_STOP_TIMEOUT_S)


def serve(
    options: UIOptions,
    *,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C; ``announce`` receives the URL once the socket is bound.

    Raises:
        RuntimeError: the address cannot be bound.
    """
    server = Server(options)
    url = server.start()
    announce(url)
    if open_browser:
        webbrowser.open(url)
    try:
        while server._thread.is_alive():
            server._thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
