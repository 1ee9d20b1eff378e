"""Where links point: the live server's routes, or the exported site's files.

The rule: templates never build a URL by hand; they ask a :class:`Links`. Why: the
same templates render the served pages (``/runs/3``) and the static export
(``run-3.html``), and a link that only works in one of them is a dead end in a
report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode


@dataclasses.dataclass(frozen=True)
class Links:
    """URL builder; ``static`` selects the exported site's file names."""

    static: bool = False
    exported: frozenset[int] = frozenset()

    def runs(self, **query: Any) -> str:
        if self.static:
            return "index.html"
        items = [(k, v) for k, v in query.items() if v not in (None, "", ())]
        flat = [
            (k, x)
            for k, v in items
            for x in (v if isinstance(v, (list, tuple)) else [v])
        ]
        return "/" + ("?" + urlencode(flat) if flat else "")

    def run(self, run_id: int) -> str | None:
        if self.static:
            return f"run-{run_id}.html" if run_id in self.exported else None
        return f"/runs/{int(run_id)}"

    def compare(self, ids: Iterable[int] = ()) -> str:
        if self.static:
            return "compare.html"
        return "/compare" + ("?" + urlencode([("ids", i) for i in ids]) if ids else "")

    def bench(self) -> str:
        return "bench.html" if self.static else "/bench"

    def asset(self, name: str) -> str:
        return f"static/{name}" if self.static else f"/static/{name}"

    def api_charts(self, run_id: int) -> str:
        return "" if self.static else f"/api/runs/{int(run_id)}/charts"

    def action(self, run_id: int, what: str) -> str:
        return f"/runs/{int(run_id)}/{what}"
