"""``stoker ui --export DIR``: the dashboard as a folder of static files.

The rule: the folder needs no server and no network: ``index.html`` (the runs
table), ``run-<id>.html`` per run, ``compare.html`` when two or more runs are
exported, ``bench.html``, and ``static/`` with the script, the stylesheet and uPlot
with its licence. Each page embeds its own data as JSON (browsers refuse ``fetch``
from ``file://``), so it opens from a disk, a zip or a pull request's artefacts.
The same templates and view builders as the server render it; only the links
differ, and forms (note, tags, re-run, delete) are left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import stoker.track.api as T
from stoker.ui import _views
from stoker.ui._links import Links
from stoker.ui._render import assets, environment, render

# Without --runs, the export takes the newest runs up to this many.
DEFAULT_EXPORT_RUNS = 100
# One page of the runs table holds them all; a report with more is not read anyway.
MAX_EXPORT_RUNS = 500


def export_site(
    out_dir: str | os.PathLike[str],
    run_ids: Sequence[int] | None = None,
    store: Any = None,
) -> Path:
    """Write the static site for ``run_ids`` (default: the newest 100) to ``out_dir``.

    Args:
        out_dir: the folder; created if missing. Existing files of the same names
            are replaced; nothing else in it is touched.
        run_ids: the runs to include.
        store: the store's path.

    Returns:
        The path of ``index.html``.

    Raises:
        StoreError: the store cannot be read, or a run does not exist.
        ValueError: ``out_dir`` is a file.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; --export needs a folder")
    if run_ids is None:
        q = T.RunQuery(per_page=DEFAULT_EXPORT_RUNS)
        ids = [r["id"] for r in T.runs_page(q, store)["runs"]]
    else:
        ids = list(dict.fromkeys(run_ids))
        if not 1 <= len(ids) <= MAX_EXPORT_RUNS:
            raise ValueError(
                f"export {len(ids)} runs: pass 1 to {MAX_EXPORT_RUNS} run ids"
            )
        for i in ids:
            T.run_detail(i, store)  # fails early, before any file is written
    (out / "static").mkdir(parents=True, exist_ok=True)
    for name, (body, _) in assets().items():
        (out / "static" / name).write_bytes(body)
    env = environment()
    links = Links(static=True, exported=frozenset(ids))
    common = {"store_path": T.mask(str(T.resolve_path(store)))}
    page = _views.runs_view(T.RunQuery(ids=tuple(ids), per_page=len(ids) or 1), store)
    html = render(
        env,
        "runs.html",
        links,
        page=page,
        q=T.RunQuery(),
        statuses=(),
        columns=(
            ("id", "#"),
            ("name", "name"),
            ("status", "status"),
            ("started", "started"),
            ("duration", "duration"),
        ),
        tag_text="",
        param_text="",
        sort_url=lambda key: "",
        page_url=lambda n: "",
        **common,
    )
    (out / "index.html").write_text(html, encoding="utf-8")
    for i in ids:
        view = _views.run_view(i, store)
        text = render(env, "run.html", links, **view, **common)
        (out / f"run-{i}.html").write_text(text, encoding="utf-8")
    if len(ids) >= 2:
        view = _views.compare_view(ids[: _views.MAX_COMPARE], store)
        text = render(env, "compare.html", links, **view, **common)
        (out / "compare.html").write_text(text, encoding="utf-8")
    bench = _views.bench_view(store)
    bench["sweeps"] = [s for s in bench["sweeps"] if s["run"]["id"] in set(ids)]
    bench["total"] = len(bench["sweeps"])
    text = render(env, "bench.html", links, **bench, **common)
    (out / "bench.html").write_text(text, encoding="utf-8")
    return out / "index.html"
