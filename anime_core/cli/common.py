"""Helpers shared by the CLI commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from anime_core.specs import ModelSpec


def warn_plugin_errors() -> None:
    """One stderr line per broken plugin, pointing at ``anime plugins``."""
    from anime_core.registry import get_registry
    from anime_core.text import printable

    for plugin in get_registry().plugins.values():
        if plugin.errors:  # plugin names and errors are the plugin's text: escaped, one line each
            line = f"warning: plugin '{plugin.name}': {plugin.errors[0]} (see 'anime plugins')"
            click.echo(printable(line), err=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


class ModelGroup(click.Group):
    """A command group whose sub-commands are the registered models (``anime run MODEL``, ``anime export MODEL``).

    ``make(spec)`` builds the command of one model, so each model's own options appear in its help.
    """

    def __init__(self, name: str, make: Callable[[Any], click.Command], **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.make = make

    def list_commands(self, ctx: click.Context) -> list[str]:
        from anime_core.registry import get_registry

        return sorted(get_registry().models)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from anime_core.errors import unknown
        from anime_core.registry import get_registry

        reg = get_registry()
        if name not in reg.models:
            raise unknown("model", name, reg.models)
        return self.make(reg.models[name])


def architecture_params(spec: ModelSpec) -> list[click.Parameter]:
    """``--variant`` (cyclegan also ``--arch``): the model's registered networks, for models that have several."""
    from anime_core.registry import get_registry  # specs and YAML only, no torch

    variants = get_registry().variants(spec)
    if variants is None or {variants.name, *variants.aliases} & {p.name for p in spec.run_options}:
        return []
    flags = [f"--{alias.replace('_', '-')}" for alias in variants.aliases]
    return [click.Option(
        [*flags, variants.name],
        type=click.Choice(variants.choices),
        default=None,  # not given: the file or style decides
        help=f"The generator network ({spec.generator}.<variant>), for a weights file whose tensors do not decide it "
             f"(e.g. a plain state dict) [default: what the file or style records, else {variants.default}]; "
             f"contradicting them is an error.",
    )]
