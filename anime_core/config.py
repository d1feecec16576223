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
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from anime_core.errors import ConfigError, did_you_mean
from anime_core.fsutil import atomic_path
from anime_core.schema import RunConfig, coerce, typed
from anime_core.specs import ModelSpec

if TYPE_CHECKING:
    from anime_core.registry import Registry

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
            raise ConfigError(f"unknown config key '{dotted}'{_suggest(key, prefix, base)}")
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


def _suggest(key: str, prefix: str, level: Mapping[str, Any]) -> str:
    hint = did_you_mean(key, level.keys())
    return hint.replace("'", f"'{prefix}", 1) if hint.startswith("; did you mean") else hint


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
    from anime_core.registry import get_registry

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
        raise ConfigError(f"unknown config key '{dotted}'{_suggest(leaf, prefix, dict.fromkeys(names))}")
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
