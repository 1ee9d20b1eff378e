"""Option parsers shared by the commands."""

from __future__ import annotations

import click


def positive_ints(
    ctx: click.Context, param: click.Parameter, value: str
) -> tuple[int, ...]:
    """A click callback: ``"1,2,4,8"`` -> ``(1, 2, 4, 8)``, every number >= 1."""
    try:
        out = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected whole numbers separated by commas, e.g. 1,2,4,8"
        ) from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: expected numbers >= 1, e.g. 1,2,4,8")
    return out


# The options every `stoker runs` command shares.
store_option = click.option(
    "--store",
    type=click.Path(dir_okay=False),
    metavar="PATH|URL",
    default=None,
    help="The store's path or postgresql:// URL [default: $STOKER_STORE, else "
    ".stoker/store.db].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
