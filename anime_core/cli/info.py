"""``anime list``, ``anime info MODEL`` and ``anime plugins``.

Names, descriptions, URLs and errors come from plugins (and their files): every line printed here goes
through :func:`~anime_core.text.printable`, so none can carry terminal escapes or a forged line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from anime_core import runfiles
from anime_core.cli.common import warn_plugin_errors
from anime_core.registry import get_registry
from anime_core.text import printable, table


def _echo(line: str, err: bool = False) -> None:
    """Print one line, its control characters escaped."""
    click.echo(printable(line), err=err)


def _table(rows: list[list[str]], header: list[str]) -> str:
    return table([[printable(cell) for cell in row] for row in rows], header)


def _models_data() -> list[dict[str, Any]]:
    reg = get_registry()
    out = []
    for name in sorted(reg.models):
        spec = reg.models[name]
        plugin = reg.plugins.get(spec.plugin)
        out.append(
            {
                "name": name,
                "kind": spec.kind,
                "plugin": spec.plugin,
                "version": plugin.version if plugin else "",
                "styles": sorted(reg.styles_of(name)),
                "description": spec.description,
            }
        )
    return out


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """List models: kind, plugin and version, styles."""
    data = _models_data()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    warn_plugin_errors()
    if not data:
        click.echo("no models installed; install a plugin, e.g. pip install 'anime-core[all]'")
        return
    rows = [
        [d["name"], d["kind"], f"{d['plugin']} {d['version']}".strip(), ", ".join(d["styles"]) or "-"] for d in data
    ]
    click.echo(_table(rows, ["MODEL", "KIND", "PLUGIN", "STYLES"]))


def _param_count(spec: Any, part: str) -> str:
    if (spec.generator if part == "generator" else spec.discriminator) is None:
        return "-"
    try:
        module = get_registry().build(spec, part)
    except Exception as exc:
        return f"(cannot build: {exc})"
    return f"{sum(p.numel() for p in module.parameters()):,} parameters"


def _data_keys(spec: Any) -> str:
    """The folders a training run of ``spec`` reads, as ``key=FOLDER`` arguments of ``anime train``."""
    kind = get_registry().datasets.get(spec.dataset or "")
    if kind is None:
        return "none"
    if not kind.keys:  # a kind that does not declare its keys: its description is all we know
        return kind.description or f"the '{kind.name}' dataset kind"
    return " ".join(" or ".join(f"{k}=FOLDER" for k in entry.split("|")) for entry in kind.keys)


def _run_info(arg: str) -> bool:
    """``anime info RUN_DIR``: the run's checkpoints (step, size, time); False when ``arg`` is no run folder."""
    if not (Path(arg) / runfiles.CONFIG).is_file():
        return False
    from anime_core.training.checkpoint import summary

    click.echo(summary(Path(arg)))
    return True


def input_policy(preprocess: Mapping[str, Any]) -> str:
    """What a style's preset does to each photo before the model sees it (``anime run`` and ``load``), in words."""
    size, crop = preprocess.get("size"), preprocess.get("center_crop")
    if crop:
        square = f"resized to {size}x{size} px" if size else "at its short side"
        whole = f"the whole photo, long side {size} px" if size else "the whole photo"
        return f"crops every photo to its centre square, {square} (--no-crop: {whole}; --size N: another side)"
    if size:
        return f"resizes every photo to a long side of {size} px (--size N: another side; --crop: a centre square)"
    return "the whole photo at its own size (--size N: long side N px; --crop: a centre square)"


@click.command("info")
@click.argument("model")
def info_command(model: str) -> None:
    """Paper, networks, default config and styles of MODEL; for a training run folder, its checkpoints."""
    if _run_info(model):
        return
    from anime_core import config as cfglib
    from anime_core.specs import ref_name
    from anime_core.weights.catalog import foreign_layouts
    from anime_core.weights.store import cache_status

    warn_plugin_errors()
    reg = get_registry()
    spec = reg.model(model)
    plugin = reg.plugins.get(spec.plugin)
    _echo(f"{spec.name} ({spec.kind}) from plugin {spec.plugin} {plugin.version if plugin else ''}".rstrip())
    if spec.description:
        _echo(f"  {spec.description}")
    if spec.paper:
        _echo(f"paper: {spec.paper}")
    variants = reg.variants(spec)
    if variants is None:
        _echo(f"generator: {spec.generator} ({ref_name(reg.generator(spec.generator).build)}): "
              f"{_param_count(spec, 'generator')}")
    else:  # the default variant's count; --variant picks another
        default = reg.generator(variants.builder_name(variants.default))
        _echo(f"generator: {default.name} ({ref_name(default.build)}): {_param_count(spec, 'generator')}; "
              f"--variant {'|'.join(variants.choices)}")
    if spec.discriminator:
        _echo(f"discriminator: {spec.discriminator} ({ref_name(reg.discriminator(spec.discriminator).build)}): "
              f"{_param_count(spec, 'discriminator')}")
    if spec.task is not None:
        _echo(f"training task: {ref_name(spec.task)}; dataset kind: {spec.dataset or '-'}")
        _echo(f"training data: {_data_keys(spec)}")
    if spec.presets:
        _echo(f"presets (--config NAME): {', '.join(sorted(spec.presets))}")
    _echo("checkpoints --weights takes: native .safetensors")
    for line in foreign_layouts(reg, model):
        _echo(f"  {line}")
    styles = reg.styles_of(model)
    if styles:
        _echo("styles:")
        for name, st in sorted(styles.items()):
            status = cache_status(st.key, st.source)
            _echo(f"  {name}: {status}; {st.description}".rstrip("; "))
            if policy := input_policy(st.preprocess):
                _echo(f"    input: {policy}")
            for f in st.source.files:  # a TF checkpoint style has two
                _echo(f"    source: {f.url}")
            if st.license:
                _echo(f"    license: {st.license}")
    _echo("default config:")
    for line in cfglib.dump(cfglib.model_defaults(spec)).splitlines():
        _echo(f"  {line}")


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> int:
    """Installed plugins, their versions and load errors.

    ANIME_DISABLE_PLUGINS=NAME,... skips plugins (by the names listed here) without uninstalling them.
    """
    reg = get_registry()
    data = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "ok": p.ok,
            "disabled": p.disabled,
            "errors": p.errors,
            "registered": p.counts,
        }
        for p in reg.plugins.values()
    ]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return 0
    rows = []
    for d in data:
        what = ", ".join(f"{n} {k}" for k, n in sorted(d["registered"].items())) or "-"
        status = reg.plugins[d["name"]].status
        rows.append([d["name"], d["distribution"] or "-", d["version"] or "-", status, what])
    click.echo(_table(rows, ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "REGISTERS"]))
    for d in data:
        for err in d["errors"]:
            _echo(f"{d['name']}: {err}", err=True)
    return 0
