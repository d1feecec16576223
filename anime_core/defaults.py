"""The YAML layers below a run config: the core's ``base.yaml`` and a plugin's defaults, read safely.

Read by :mod:`anime_core.config` (which resolves a run's config), the registry (a net's builder options)
and :mod:`anime_core.variants` (the default variant); it imports neither, so none of them imports another
to read a default. Only ``yaml.safe_load`` is used, with limits on size and aliases.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from anime_core.errors import ConfigError, did_you_mean
from anime_core.schema import coerce
from anime_core.specs import ModelSpec

Config = dict[str, Any]  # a YAML layer; the resolved config is a RunConfig
MAX_CONFIG_BYTES = 1 << 20  # a run config is a few KB; refuse anything far larger
MAX_ALIASES = 64  # YAML anchors are legal, but an "alias bomb" expands exponentially


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses documents with more than :data:`MAX_ALIASES` aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)


def safe_load(text: str, what: str) -> Any:
    """``yaml.safe_load`` with limits on size and aliases; a violation is a :class:`ConfigError`."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} is {len(text):,} bytes; a config must be under {MAX_CONFIG_BYTES:,} bytes")
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        if "aliases" in str(exc) and "more than" in str(exc):
            raise ConfigError(f"{what} uses more than {MAX_ALIASES} YAML aliases; write the values out") from None
        raise
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Config:
    """Read a YAML mapping safely; a missing or malformed file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes; is it the right file?")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; give a YAML file") from None
    try:
        data = safe_load(text, f"config file {path}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}; fix the syntax and retry") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not a {type(data).__name__}")
    return data


def base_defaults() -> Config:
    """The keys every model understands (``anime_core/configs/base.yaml``)."""
    text = resources.files("anime_core").joinpath("configs/base.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def model_defaults(model: ModelSpec) -> Config:
    """Base keys merged with the plugin's default YAML (the plugin may add keys)."""
    cfg = base_defaults()
    if model.config is not None:
        cfg = deep_merge(cfg, read_yaml(model.config), check=False)
    return cfg


def deep_merge(base: Mapping[str, Any], new: Mapping[str, Any], check: bool = True, prefix: str = "") -> Config:
    """Merge ``new`` into a copy of ``base``; with ``check`` unknown keys raise :class:`ConfigError`."""
    out = copy.deepcopy(dict(base))
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if check and key not in out and not _is_open(base):
            raise ConfigError(f"unknown config key '{dotted}'{suggest(key, prefix, base)}")
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping) and old:
            out[key] = deep_merge(old, value, check=check, prefix=f"{dotted}.")
        elif check and key in out and old is not None and value is not None:
            out[key] = coerce(dotted, type(old), value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_open(mapping: Mapping[str, Any]) -> bool:
    # an empty mapping in the defaults ("generator: {}") accepts any keys
    return isinstance(mapping, Mapping) and len(mapping) == 0


def suggest(key: str, prefix: str, level: Mapping[str, Any]) -> str:
    hint = did_you_mean(key, level.keys())
    return hint.replace("'", f"'{prefix}", 1) if hint.startswith("; did you mean") else hint
