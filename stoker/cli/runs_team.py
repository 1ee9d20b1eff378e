"""``stoker runs sync``, ``push`` and ``pull``: the team store's commands.

Thin, like the rest of ``stoker runs``: each parses, calls one function of
:mod:`stoker.track` (``sync_spools``, ``copy_runs``) and prints.
"""

from __future__ import annotations

import click

from stoker.cli._params import json_option, store_option
from stoker.cli.runs import _call, _json, _print_json, _store


@click.command()
@store_option
@click.option(
    "--spool",
    type=click.Path(file_okay=False),
    help="The spool folder [default: $STOKER_SPOOL, else .stoker/spool].",
)
@json_option
@click.pass_context
def sync(
    ctx: click.Context, store: str | None, spool: str | None, as_json: bool
) -> None:
    """Send the runs spooled while the team store was away; each write once."""
    from stoker.track import sync_spools

    results = _call(sync_spools, _store(ctx, store), spool=spool)
    if _json(ctx, as_json):
        _print_json(results)
        return
    if not results:
        click.echo("nothing to send: no spool")
    for r in results:
        if r["status"] == "live":
            click.echo(f"{r['spool']}: its run is still running; its writer sends it")
        else:
            click.echo(
                f"run {r['run_id']}: sent {r['writes']} writes from {r['spool']}"
            )


def _copy(
    ctx: click.Context,
    source: str | None,
    target: str | None,
    run_ids: tuple[int, ...],
    as_json: bool,
) -> None:
    from stoker.track import copy_runs

    results = _call(copy_runs, source, target, list(run_ids) or None)
    if _json(ctx, as_json):
        _print_json(results)
        return
    counts = {
        s: sum(r["status"] == s for r in results)
        for s in ("copied", "present", "running")
    }
    for r in results:
        if r["status"] == "copied":
            click.echo(f"run {r['id']} -> {r['target_id']}")
    click.echo(
        f"{counts['copied']} copied, {counts['present']} already there"
        + (
            f", {counts['running']} still running (not copied)"
            if counts["running"]
            else ""
        )
    )


@click.command()
@click.argument("run_ids", type=int, nargs=-1)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="STORE",
    help="The store to copy to (a postgresql:// URL or a path).",
)
@store_option
@json_option
@click.pass_context
def push(
    ctx: click.Context,
    run_ids: tuple[int, ...],
    target: str,
    store: str | None,
    as_json: bool,
) -> None:
    """Copy ended runs (default: all) from this store to another; idempotent."""
    _copy(ctx, _store(ctx, store), target, run_ids, as_json)


@click.command()
@click.argument("run_ids", type=int, nargs=-1)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="STORE",
    help="The store to copy from (a postgresql:// URL or a path).",
)
@store_option
@json_option
@click.pass_context
def pull(
    ctx: click.Context,
    run_ids: tuple[int, ...],
    source: str,
    store: str | None,
    as_json: bool,
) -> None:
    """Copy ended runs (default: all; ids in the other store) into this store."""
    _copy(ctx, source, _store(ctx, store), run_ids, as_json)
