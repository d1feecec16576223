"""``anime weights list|pull|import|verify|path``: the verified weights cache.

Nothing here imports torch: listing, pulling and verifying are file and network work only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from anime_core.errors import WeightsUnavailable

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.specs import WeightsSource

_WORDS = {"cached": "ok", "not cached": "missing", "corrupt": "CORRUPT"}


def get_registry() -> Registry:
    from anime_core.registry import get_registry as registry

    return registry()


def _status(key: str, source: WeightsSource) -> tuple[str, Path]:
    from anime_core.weights.store import cache_status, cached_path

    return _WORDS[cache_status(key, source)], cached_path(key, source)


@click.group("weights", short_help="List, download, import and verify pretrained weights.")
def weights_group() -> None:
    """Manage pretrained weights: styles (MODEL:STYLE) and backbones (backbone:NAME)."""


@weights_group.command("list")
def list_cmd() -> None:
    """Every known weights file and whether it is cached."""
    from anime_core.cli.common import warn_plugin_errors
    from anime_core.text import table
    from anime_core.weights.catalog import catalog

    warn_plugin_errors()  # a plugin that was refused a name must not go unnoticed where URLs are listed

    rows = []
    for key, entry in catalog(get_registry()).items():
        status, _ = _status(key, entry.source)
        more = len(entry.source.companions)
        rows.append([key, status, entry.source.url + (f" (+{more} file{'s' * (more > 1)} beside it)" if more else "")])
    click.echo(table(rows, ["WEIGHTS", "CACHE", "SOURCE"]))


@weights_group.command("pull")
@click.argument("keys", nargs=-1)
@click.option("--all", "pull_all", is_flag=True, help="Pull every known weights file.")
def pull_cmd(keys: tuple[str, ...], pull_all: bool) -> int:
    """Download and verify KEYS (e.g. animegan:paprika backbone:vgg19)."""
    from anime_core.errors import UsageError
    from anime_core.weights.catalog import catalog, entry
    from anime_core.weights.store import fetch

    reg = get_registry()
    targets = list(catalog(reg)) if pull_all else list(keys)
    if not targets:
        raise UsageError("name the weights to pull (see 'anime weights list') or pass --all")
    failed = 0
    for key in targets:
        try:
            path = fetch(key, entry(reg, key).source)
            click.echo(f"{key}: {path}")
        except WeightsUnavailable as exc:
            if len(targets) == 1:
                raise
            click.echo(f"error: {exc}", err=True)
            failed += 1
    return 3 if failed else 0


@weights_group.command("import")
@click.argument("key")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def import_cmd(key: str, files: tuple[Path, ...]) -> None:
    """Install FILES, obtained elsewhere, as the weights KEY after checking their published hashes.

    Weights made of several files (a TensorFlow checkpoint's .index and .data) take them all, or
    one of them with the others beside it under their published names.
    """
    from anime_core.weights.catalog import entry
    from anime_core.weights.store import import_file

    source = entry(get_registry(), key).source
    path = import_file(key, source, *files)
    where = f"in {path.parent}" if source.companions else f"at {path}"
    click.echo(f"{key}: verified and installed {where}")


@weights_group.command("verify")
@click.argument("keys", nargs=-1)
def verify_cmd(keys: tuple[str, ...]) -> int:
    """Re-check the hashes of cached files (all cached ones by default).

    Temp files that killed downloads or imports left behind are listed and removed.
    """
    from anime_core.weights.catalog import catalog, entry

    reg = get_registry()
    entries = {k: entry(reg, k) for k in keys} if keys else catalog(reg)
    bad = _report_partial()
    checked = 0
    for key, e in entries.items():
        status, path = _status(key, e.source)
        if status == "missing" and not keys:
            continue
        checked += 1
        click.echo(f"{key}: {status} ({path})")
        bad += status != "ok"
    if not checked:
        click.echo("no weights are cached yet")
    return 3 if bad else 0


def _report_partial() -> int:
    """List (and remove) the temp files of killed downloads and imports; how many could not be removed."""
    from anime_core.budget import fmt_bytes
    from anime_core.weights.store import sweep_partial

    sweep = sweep_partial()
    for path, size in sweep.removed:
        click.echo(f"removed {path} ({fmt_bytes(size)}): left by a download or import that was killed")
    for path, why in sweep.kept:
        click.echo(f"CANNOT REMOVE {path}: left by a download or import that was killed ({why}); delete it")
    for path, pid in sweep.in_use:
        by = f"process {pid}" if pid is not None else "another process"
        click.echo(f"in use: {path} is being written by {by} (a download or import running now); left alone")
    return len(sweep.kept)


@weights_group.command("path")
@click.argument("key", required=False)
def path_cmd(key: str | None) -> None:
    """Print the cache folder, or the path of KEY's cached file (exit 3 if it is not cached or corrupt)."""
    from anime_core.weights.catalog import entry
    from anime_core.weights.store import anime_home

    if key is None:
        click.echo(anime_home())
        return
    source = entry(get_registry(), key).source
    status, path = _status(key, source)
    files = " ".join(f.file_name for f in source.files) if source.companions else "FILE"
    if status == "missing":  # a path to a file that is not there would read as success in a script
        raise WeightsUnavailable(
            f"{key} is not cached (it would be {path}); run 'anime weights pull {key}', or "
            f"'anime weights import {key} {files}' for a copy fetched elsewhere"
        )
    if status != "ok":
        raise WeightsUnavailable(
            f"cached {key} at {path} is corrupt; run 'anime weights pull {key}' after deleting it, or "
            f"'anime weights import {key} {files}'"
        )
    click.echo(path)
