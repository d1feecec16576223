"""Helpers shared by the CLI commands."""

from __future__ import annotations

import click


def warn_plugin_errors() -> None:
    """One stderr line per broken plugin, pointing at ``anime plugins``."""
    from anime_core.registry import get_registry

    for plugin in get_registry().plugins.values():
        if plugin.errors:
            click.echo(f"warning: plugin '{plugin.name}': {plugin.errors[0]} (see 'anime plugins')", err=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
