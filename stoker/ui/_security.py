"""Who may read and who may change: the token, the host check, safe headers.

The rules, applied to every request before any handler runs:

- on loopback, the ``Host`` header must name loopback too, so a web page that points
  its own domain at 127.0.0.1 (DNS rebinding) gets nothing;
- off loopback, every request carries the token: once in the URL (``?token=``, as
  Jupyter prints it), which sets an HttpOnly, SameSite=Strict cookie and redirects to
  the same URL without it, so it leaves the address bar and browser history;
- every POST carries the token in its form (``token``) or the ``X-Stoker-Token``
  header, on loopback too; no GET changes anything;
- tokens are compared with :func:`hmac.compare_digest` (constant time);
- every response forbids inline scripts and framing (Content-Security-Policy), so
  an escaping mistake in a template still cannot run a script.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stoker.ui._options import LOCAL_HOSTS, UIOptions

COOKIE = "stoker_token"
HEADER = "x-stoker-token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def same(given: str | None, token: str) -> bool:
    """Whether ``given`` is the token (constant time; None never is)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _host_name(value: str) -> str:
    if value.startswith("["):  # [::1]:8765
        return value[1:].split("]")[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


# The largest form accepted: a note of MAX_NOTE_CHARS, URL-encoded, fits easily.
MAX_FORM_BYTES = 256 * 1024


async def form_of(request: Request) -> dict[str, str]:
    """A POST's URL-encoded form (the only kind the pages send), last value wins.

    Raises:
        ValueError: another content type, or a body over :data:`MAX_FORM_BYTES`.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise ValueError(f"send the form URL-encoded, not as {kind!r}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ValueError(f"form larger than {MAX_FORM_BYTES} bytes")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


def post_token(request: Request, form: dict[str, str]) -> str | None:
    """The token a POST carries (header, else form field)."""
    return request.headers.get(HEADER) or form.get("token")


class Guard:
    """ASGI middleware enforcing the module's rules; see its docstring."""

    def __init__(self, app: ASGIApp, options: UIOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refusal = self._refuse(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refuse(self, request: Request) -> Response | None:
        token = self.options.token
        host = _host_name(request.headers.get("host", ""))
        if self.options.local and host not in LOCAL_HOSTS:
            return PlainTextResponse(
                f"host {host!r} refused: this dashboard serves 127.0.0.1 only "
                "(start it with --host to serve others)",
                status_code=403,
            )
        if self.options.local:
            return None
        given = request.query_params.get("token")
        if given is not None:
            if not same(given, token):
                return _denied()
            rest = [
                (k, v) for k, v in request.query_params.multi_items() if k != "token"
            ]
            url = URL(request.url.path + ("?" + urlencode(rest) if rest else ""))
            response = RedirectResponse(str(url), status_code=303)
            response.set_cookie(
                COOKIE, token, httponly=True, samesite="strict", path="/"
            )
            return response
        if same(request.cookies.get(COOKIE), token) or same(
            request.headers.get(HEADER), token
        ):
            return None
        return _denied()


def _denied() -> Response:
    return PlainTextResponse(
        "this dashboard needs its token: open the URL `stoker ui` printed "
        "(it ends with ?token=...)",
        status_code=403,
    )
