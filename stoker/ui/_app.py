"""The dashboard's web app: pages and their JSON, over one store, read-only.

The rules: every page is server-rendered from a ``_views`` builder and its JSON twin
lives under ``/api``; GETs never change anything; the four changes (note, tag,
delete, re-run) are POSTs checked by ``_security.Guard`` and then by the token
again here; a store that is missing, damaged or foreign gives an error page with
the reason (and HTTP 503), never a crash: the next request tries again, so fixing
the file fixes the page. Handlers are plain functions that Starlette runs in its
thread pool, so a slow read never stalls other requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import stoker.track.api as T
from stoker._errors import StoreError
from stoker.ui import _views
from stoker.ui._links import Links
from stoker.ui._options import UIOptions
from stoker.ui._render import assets, environment, render
from stoker.ui._security import Guard, form_of, post_token, same
from stoker.ui._tasks import Reruns

_LINKS = Links()
_STATUSES = ("running", "finished", "failed", "killed")
_COLUMNS = (
    ("id", "#"),
    ("name", "name"),
    ("status", "status"),
    ("started", "started"),
    ("duration", "duration"),
)


def _pair(text: str) -> tuple[str, str] | None:
    if not text.strip():
        return None
    if "=" not in text:
        raise ValueError(f"filter {text!r}: write it as key=value")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def parse_query(request: Request) -> T.RunQuery:
    """The runs table's query from the URL (ValueError says what is wrong)."""
    qp = request.query_params
    try:
        page = int(qp.get("page", "1"))
        per_page = int(qp.get("per", str(T.RunQuery.per_page)))
    except ValueError:
        raise ValueError("page and per must be whole numbers") from None
    return T.RunQuery(
        page=page,
        per_page=per_page,
        sort=qp.get("sort", "id"),
        desc=qp.get("desc", "1") != "0",
        status=tuple(s for s in qp.getlist("status") if s),
        search=qp.get("q", "").strip(),
        tag=_pair(qp.get("tag", "")),
        param=_pair(qp.get("param", "")),
    )


def _ids(request: Request) -> list[int]:
    raw = [x for v in request.query_params.getlist("ids") for x in v.split(",")]
    try:
        return [int(x) for x in raw if x.strip()]
    except ValueError:
        raise ValueError("ids must be run numbers, e.g. ?ids=3&ids=4") from None


def create_app(options: UIOptions | None = None) -> Starlette:
    """The dashboard as an ASGI app (serve it with uvicorn, test it with TestClient).

    Args:
        options: the store, host and what is allowed; default: the default store,
            loopback, no re-runs.
    """
    opts = options or UIOptions()
    env = environment()
    static = assets()
    reruns = Reruns(opts.store)
    store_path = T.mask(str(T.resolve_path(opts.store)))  # never show a password

    def page(name: str, **ctx: Any) -> HTMLResponse:
        html = render(
            env,
            name,
            _LINKS,
            store_path=store_path,
            token=opts.token,
            allow_rerun=opts.allow_rerun,
            **ctx,
        )
        return HTMLResponse(html)

    def failure(request: Request, exc: Exception) -> Response:
        code = 503 if isinstance(exc, StoreError) else 400
        title = "The store cannot be read" if code == 503 else "Bad request"
        if isinstance(exc, StoreError) and "no run" in str(exc):
            code, title = 404, "No such run"
        elif isinstance(exc, StoreError) and request.method == "POST":
            code, title = 409, "The run was not changed"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=code)
        html = render(env, "error.html", _LINKS, title=title, message=str(exc))
        return HTMLResponse(html, status_code=code)

    def runs(request: Request) -> Response:
        q = parse_query(request)
        data = _views.runs_view(q, opts.store)
        if request.url.path.startswith("/api/"):
            return JSONResponse(T.jsonable(data))
        base = {
            "q": q.search,
            "status": list(q.status),
            "tag": "=".join(q.tag) if q.tag else "",
            "param": "=".join(q.param) if q.param else "",
            "per": q.per_page if q.per_page != T.RunQuery.per_page else None,
        }

        def sort_url(key: str) -> str:
            desc = 0 if (q.sort == key and q.desc) else 1
            return _LINKS.runs(**base, sort=key, desc=desc)

        def page_url(n: int) -> str:
            return _LINKS.runs(**base, sort=q.sort, desc=int(q.desc), page=n)

        return page(
            "runs.html",
            page=data,
            q=q,
            statuses=_STATUSES,
            columns=_COLUMNS,
            tag_text=base["tag"],
            param_text=base["param"],
            sort_url=sort_url,
            page_url=page_url,
        )

    def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        view = _views.run_view(run_id, opts.store)
        if request.url.path.startswith("/api/"):
            return JSONResponse(T.jsonable(view["run"]))
        return page("run.html", flash=reruns.message(run_id), **view)

    def charts(request: Request) -> Response:
        data = T.run_charts(request.path_params["run_id"], opts.store)
        return JSONResponse(T.jsonable(data))

    def compare(request: Request) -> Response:
        view = _views.compare_view(_ids(request), opts.store)
        if request.url.path.startswith("/api/"):
            return JSONResponse(T.jsonable(view["data"]))
        return page("compare.html", **view)

    def bench(request: Request) -> Response:
        view = _views.bench_view(opts.store)
        if request.url.path.startswith("/api/"):
            return JSONResponse(T.jsonable(view))
        return page("bench.html", **view)

    def asset(request: Request) -> Response:
        # Looked up in a dict of packaged files: a request path never reaches disk.
        found = static.get(request.path_params["name"])
        if found is None:
            return Response("no such asset", status_code=404, media_type="text/plain")
        body, media = found
        return Response(
            body, media_type=media, headers={"cache-control": "max-age=300"}
        )

    async def change(request: Request) -> Response:
        form = await form_of(request)
        if not same(post_token(request, form), opts.token):
            return Response("missing or wrong token", status_code=403)
        run_id = request.path_params["run_id"]
        what = request.path_params["what"]

        def text(name: str) -> str:
            return form.get(name, "")

        back = RedirectResponse(_LINKS.run(run_id) or "/", status_code=303)
        if what == "note":
            await _in_thread(T.set_note, run_id, text("note"), opts.store)
        elif what == "tags":
            key, value = text("key").strip(), text("value").strip()
            await _in_thread(T.set_tags, run_id, {key: value or None}, opts.store)
        elif what == "delete":
            await _in_thread(T.delete_run, run_id, opts.store)
            return RedirectResponse(_LINKS.runs(), status_code=303)
        elif what == "rerun":
            if not opts.allow_rerun:
                return Response(
                    "re-runs are off: start the dashboard with --allow-rerun",
                    status_code=403,
                )
            await _in_thread(T.run_detail, run_id, opts.store)  # 404 if unknown
            reruns.start(run_id)
        else:
            return Response("unknown action", status_code=404)
        return back

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        reruns.close()

    handlers: dict[Any, Any] = {StoreError: failure, ValueError: failure}
    app = Starlette(
        routes=[
            Route("/", runs),
            Route("/runs/{run_id:int}", run),
            Route("/compare", compare),
            Route("/bench", bench),
            Route("/static/{name}", asset),
            Route("/api/runs", runs),
            Route("/api/runs/{run_id:int}", run),
            Route("/api/runs/{run_id:int}/charts", charts),
            Route("/api/compare", compare),
            Route("/api/bench", bench),
            Route("/runs/{run_id:int}/{what}", change, methods=["POST"]),
        ],
        middleware=[Middleware(Guard, options=opts)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.reruns = reruns
    return app


async def _in_thread(fn: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)
