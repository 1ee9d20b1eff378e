"""``stoker ui``: serve the tracking store as a web dashboard, or export it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--store",
    default=None,
    metavar="PATH|URL",
    help="The store's path or postgresql:// URL [default: $STOKER_STORE, else "
    ".stoker/store.db].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback requires the printed token.",
)
@click.option("--port", default=8765, show_default=True, help="TCP port (0: any).")
@click.option("--open", "open_browser", is_flag=True, help="Open it in a browser.")
@click.option(
    "--allow-rerun",
    is_flag=True,
    help="Show a Re-run button that runs a recorded command at its commit.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write a static site (HTML, data, JS) to this folder instead of serving.",
)
@click.option(
    "--runs",
    "run_ids",
    default=None,
    help="With --export: the run ids to include, e.g. 3,4,7 [default: newest 100].",
)
def ui(
    store: str | None,
    host: str,
    port: int,
    open_browser: bool,
    allow_rerun: bool,
    export_dir: Path | None,
    run_ids: str | None,
) -> None:
    """Browse, chart, compare and re-run tracked runs in a web browser."""
    try:
        import stoker.ui as dashboard
    except ImportError as exc:
        raise click.ClickException(str(exc)) from exc
    from stoker._errors import StoreError

    try:
        if export_dir is not None:
            ids = None
            if run_ids:
                try:
                    ids = [int(x) for x in run_ids.split(",") if x.strip()]
                except ValueError:
                    raise click.BadParameter(
                        "use run ids separated by commas, e.g. 3,4,7",
                        param_hint="--runs",
                    ) from None
            index = dashboard.export_site(export_dir, ids, store)
            click.echo(f"wrote {index} (open it in a browser; no server needed)")
            return
        if run_ids:
            raise click.UsageError("--runs goes with --export")
        options = dashboard.UIOptions(
            store=store, host=host, port=port, allow_rerun=allow_rerun
        )
        from stoker.track.api import mask, resolve_path

        click.echo(f"stoker ui: serving {mask(str(resolve_path(options.store)))}")
        if not options.local:
            click.echo("Anyone who can reach this host needs the token in this URL:")
        dashboard.serve(
            options,
            open_browser=open_browser,
            announce=lambda url: click.echo(f"    {url}\n(Ctrl-C stops it)"),
        )
    except (StoreError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
