"""The CLI reference, generated from the CLI itself: ``docs/cli.md``.

Every command's ``--help`` text, at a fixed width, in one Markdown page. The page is
written by ``make cli-docs`` (``python -m stoker.cli._reference docs/cli.md``) and a
test compares it with what the commands say now, so it cannot go stale (datasette
does the same with cog).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

# The width the help text is wrapped at, whatever the terminal: the page must not
# depend on who generated it.
_WIDTH = 88
_HEAD = """\
# Command-line reference

Generated from the commands' own `--help` by `make cli-docs`; `make test` checks that
this page is current. Start with `stoker --help`, or `stoker COMMAND --help`.
"""


def _commands(
    cmd: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[str, str]]:
    ctx = click.Context(
        cmd,
        info_name=path[-1],
        parent=parent,
        terminal_width=_WIDTH,
        max_content_width=_WIDTH,
    )
    yield " ".join(path), cmd.get_help(ctx)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                yield from _commands(sub, [*path, name], ctx)


def reference() -> str:
    """The whole page, as ``docs/cli.md`` should hold it."""
    from stoker.cli import main

    parts = [_HEAD]
    for name, text in _commands(main, ["stoker"], None):
        parts.append(f"\n## `{name}`\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    page = reference()
    if target is None:
        sys.stdout.write(page)
    else:
        target.write_text(page)
