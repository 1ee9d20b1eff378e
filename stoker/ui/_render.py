"""Pages from templates: one Jinja2 environment, autoescaping always on.

The rule: every value a template prints is escaped (``autoescape=True`` for every
template, not only ``.html`` ones), and data for scripts goes through ``tojson``,
which also escapes ``<``, ``>``, ``&`` and quotes, so a run named
``</script><script>...`` cannot end the data block. Templates are read from the
package at start-up; no request names a template or a file.
"""

from __future__ import annotations

import datetime
import math
from importlib import resources
from typing import Any

import jinja2

import stoker.track.api as T
from stoker.ui._links import Links

# Static assets, read once from the package: the only files the server sends.
ASSETS = ("app.css", "app.js", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE")
_TYPES = {".css": "text/css", ".js": "text/javascript", ".LICENSE": "text/plain"}


def assets() -> dict[str, tuple[bytes, str]]:
    """Every asset's bytes and media type, by file name."""
    root = resources.files("stoker.ui") / "static"
    out = {}
    for name in ASSETS:
        suffix = "." + name.rsplit(".", 1)[1]
        out[name] = ((root / name).read_bytes(), _TYPES[suffix])
    return out


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return ""
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _duration(s: Any) -> str:
    if not isinstance(s, (int, float)) or math.isnan(s):
        return ""
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {round(s % 60)} s"
    return f"{int(s // 3600)} h {round(s % 3600 / 60)} min"


def environment() -> jinja2.Environment:
    """The dashboard's template environment (autoescape on for every template)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stoker.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, duration=_duration, jsonable=T.jsonable)
    return env


def render(env: jinja2.Environment, name: str, links: Links, **ctx: Any) -> str:
    """Render page ``name`` with the links and values every page uses."""
    ctx.setdefault("store_path", "")
    ctx.setdefault("token", "")
    ctx.setdefault("allow_rerun", False)
    ctx.setdefault("flash", "")
    return env.get_template(name).render(links=links, **ctx)
