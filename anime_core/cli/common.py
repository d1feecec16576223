"""Helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from anime_core.errors import unknown
from anime_core.registry import get_registry
from anime_core.text import printable


def warn_plugin_errors() -> None:
    """One stderr line per broken plugin, pointing at ``anime plugins``."""
    for plugin in get_registry().plugins.values():
        if plugin.errors:  # plugin names and errors are the plugin's text: escaped, one line each
            line = f"warning: plugin '{plugin.name}': {plugin.errors[0]} (see 'anime plugins')"
            click.echo(printable(line), err=True)


class ModelGroup(click.Group):
    """A command group whose sub-commands are the registered models (``anime run MODEL``, ``anime export MODEL``).

    ``make(spec)`` builds the command of one model, so each model's own options appear in its help.
    """

    def __init__(self, name: str, make: Callable[[Any], click.Command], **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.make = make

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(get_registry().models)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        reg = get_registry()
        if name not in reg.models:
            raise unknown("model", name, reg.models)
        return self.make(reg.models[name])
