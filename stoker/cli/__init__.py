"""The ``stoker`` command line: thin commands over the library.

Each command lives in its own module here and is imported only when it runs, so
``stoker --help`` stays fast and a missing optional extra only affects its command.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# command name -> (module, attribute); modules import their heavy dependencies lazily.
_COMMANDS = {
    "bench": ("stoker.cli.bench", "bench"),
    "demo": ("stoker.cli.demo", "demo"),
    "runs": ("stoker.cli.runs", "runs"),
    "ui": ("stoker.cli.ui", "ui"),
    "sweep": ("stoker.cli.sweep", "sweep"),
    "tune": ("stoker.cli.tune", "tune"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        if cmd_name not in _COMMANDS:
            return None
        module_name, attr = _COMMANDS[cmd_name]
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="stoker")
def main() -> None:
    """stoker: keep a training loop fed."""
