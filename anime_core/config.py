"""Run configuration: plugin defaults < user YAML (file or preset) < ``key=value`` overrides.

:func:`resolve` merges the YAML layers and returns **the** run config: the model's typed schema
(:mod:`anime_core.schema`, a :class:`~anime_core.schema.RunConfig` dataclass; the core keys alone
for a model without a schema). Everything downstream (the training loop, tasks, datasets, init,
the web app) reads its attributes, ``cfg.train.batch_size``; a key the schema does not declare is
an ``AttributeError``, so no code can read a key that no YAML sets. ``configs/*.yaml`` stay the
one source of values: the schema carries types and ranges, never defaults.

Values of overrides are typed by the schema (``train.batch_size=8`` is an int,
``train.precision=no`` stays the string ``"no"``), options of the open ``generator:``/
``discriminator:`` sections by the default they replace, both through :func:`anime_core.schema.coerce`.
A key that no default declares is an error with the closest known key. Only ``yaml.safe_load`` is used.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from anime_core.defaults import (  # noqa: F401 (base_defaults, read_yaml: read through this module too)
    Config,
    base_defaults,
    deep_merge,
    model_defaults,
    read_yaml,
    safe_load,
    suggest,
)
from anime_core.errors import ConfigError, did_you_mean
from anime_core.fsutil import atomic_path
from anime_core.registry import Registry, get_registry
from anime_core.schema import RunConfig, typed
from anime_core.specs import ModelSpec


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> ``(["train", "lr"], 1e-4)``; values are read as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value; write e.g. train.batch_size=8")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key; write e.g. train.batch_size=8")
    return key.split("."), _scalar(raw)


def _scalar(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    try:
        return safe_load(raw, "an override value") if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply dotted ``key=value`` overrides, checking keys and types against ``cfg``."""
    for text in overrides:
        path, value = parse_override(text)
        nested: Any = value
        for part in reversed(path):
            nested = {part: nested}
        cfg = deep_merge(cfg, nested)
    return cfg


def resolve(
    model: ModelSpec,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Config | None = None,
) -> RunConfig:
    """Defaults < ``config`` (a file or one of the model's preset names) < ``overrides``: the typed run config."""
    cfg = base if base is not None else model_defaults(model)
    if config is not None:
        cfg = deep_merge(cfg, read_yaml(_config_path(model, config)))
    return validate(model, apply_overrides(cfg, overrides))


def load_saved(model: ModelSpec, path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """A run's saved ``config.yaml`` (+ ``overrides``): keys added since the run was made take their defaults."""
    saved = deep_merge(model_defaults(model), read_yaml(path), check=False)
    return validate(model, apply_overrides(saved, overrides))


def validate(model: ModelSpec, cfg: Mapping[str, Any], registry: Registry | None = None) -> RunConfig:
    """Check the merged mapping ``cfg`` against the model's schema; returns the typed run config.

    A model without a schema has the core keys (:class:`~anime_core.schema.RunConfig`) and builder
    options only. Adversarial loss names are checked against ``registry`` (default: the process registry).
    """
    adversarial = {name for name, spec in (registry or get_registry()).losses.items() if spec.adversarial}
    return typed(model.schema_class() or RunConfig, cfg, adversarial)


def refresh(model: ModelSpec, cfg: RunConfig, registry: Registry | None = None) -> None:
    """Check ``cfg`` again after code changed its values (``--init``), retyping them in place."""
    checked = validate(model, to_dict(cfg), registry)
    for f in dataclasses.fields(checked):
        setattr(cfg, f.name, getattr(checked, f.name))


def to_dict(cfg: RunConfig | Mapping[str, Any]) -> Config:
    """The config as plain nested dicts (what ``config.yaml`` holds)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else copy.deepcopy(dict(cfg))  # type: ignore[arg-type]


def declares(cfg: RunConfig, dotted: str) -> bool:
    """Whether the model's config has the key ``dotted`` (``data.prepared``): for core code that serves
    several models, where only some declare a key."""
    try:
        lookup(cfg, dotted)
    except (AttributeError, KeyError):
        return False
    return True


def lookup(cfg: RunConfig, dotted: str) -> Any:
    """The value of ``dotted`` (``train.batch_size``); an undeclared key raises ``AttributeError``
    (``KeyError`` inside the open ``generator``/``discriminator`` sections). No default: every key
    has its value in the YAML."""
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part] if isinstance(node, Mapping) else getattr(node, part)
    return node


def assign(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set the key ``dotted``; one the schema does not declare is a :class:`ConfigError` (an open
    ``generator``/``discriminator`` section takes any option). Run :func:`refresh` to type the value."""
    *parents, leaf = dotted.split(".")
    node = lookup(cfg, ".".join(parents)) if parents else cfg
    if isinstance(node, dict):
        node[leaf] = value
        return
    names = [f.name for f in dataclasses.fields(node)]
    if leaf not in names:
        prefix = ".".join(parents) + "." if parents else ""
        raise ConfigError(f"unknown config key '{dotted}'{suggest(leaf, prefix, dict.fromkeys(names))}")
    setattr(node, leaf, value)


def net_options(cfg: RunConfig, part: str) -> dict[str, Any]:
    """The ``generator:`` or ``discriminator:`` section as builder keyword arguments (a schema may type it)."""
    section = getattr(cfg, part)
    return dataclasses.asdict(section) if dataclasses.is_dataclass(section) else dict(section)


def _config_path(model: ModelSpec, config: str | Path) -> Path:
    text = str(config)
    if text in model.presets:
        return Path(model.presets[text])
    path = Path(text)
    if path.exists() or path.suffix in {".yaml", ".yml"} or os.sep in text:
        return path
    raise ConfigError(
        f"'{text}' is neither a config file nor a preset of '{model.name}'{did_you_mean(text, model.presets)}"
    )


def dump(cfg: RunConfig | Mapping[str, Any]) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def write(cfg: RunConfig | Mapping[str, Any], path: str | Path) -> None:
    """Write ``cfg`` as YAML atomically."""
    atomic_write_text(Path(path), dump(cfg))


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
