"""The dashboard: ``stoker ui`` serves the tracking store as a local web app.

Runs, one run (charts, loader panel, system panel, note, tags, diff), compare with a
scaling chart, bench sweeps, live updates, re-run, and a static export. It reads the
store through ``stoker.track``'s read-only API; see docs/dashboard.md.

It needs the ``dashboard`` extra (Starlette, uvicorn, Jinja2); importing this package
without it raises an ImportError that names the pip command.
"""

from __future__ import annotations

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the dashboard needs the 'dashboard' extra ({e.name} is missing): "
        "pip install 'stoker[dashboard]'"
    ) from e

from stoker.ui._app import create_app
from stoker.ui._export import export_site
from stoker.ui._options import UIOptions
from stoker.ui._serve import Server, serve, url_of

__all__ = ["Server", "UIOptions", "create_app", "export_site", "serve", "url_of"]
