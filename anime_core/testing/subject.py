"""Finding the plugin under test and loading it in isolation: the core, the plugin and what it builds on."""

from __future__ import annotations

import importlib
import importlib.metadata as md
from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

from anime_core.hookspecs import ENTRY_POINT_GROUP
from anime_core.registry import Registry, load_registry
from anime_core.specs import DiscriminatorSpec, GeneratorSpec, ModelSpec, StyleSpec, WeightsConverter
from anime_core.testing.report import Subject


def installed_plugins() -> list[str]:
    """Names of the plugins installed in the ``anime.plugins`` entry-point group, sorted."""
    return sorted({ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)})


def _entry_point(name: str) -> md.EntryPoint | None:
    return next((ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name), None)


def resolve(plugin: str | ModuleType | object, name: str | None) -> tuple[str, object | None, str | None, str | None]:
    """``(name, plugin object, entry-point module, load error)`` of an entry-point name, a module name or an object."""
    if not isinstance(plugin, str):
        module = plugin.__name__ if isinstance(plugin, ModuleType) else None
        if name is None:
            label = module or getattr(plugin, "__name__", type(plugin).__name__)
            eps = md.entry_points(group=ENTRY_POINT_GROUP)
            name = next((ep.name for ep in eps if ep.value == label), label)
        return name, plugin, module, None
    ep = _entry_point(plugin)
    target = ep.value if ep is not None else plugin
    module = ep.module if ep is not None else plugin
    try:
        obj = ep.load() if ep is not None else importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        if ep is None and exc.name == plugin.split(".")[0]:
            installed = ", ".join(installed_plugins()) or "none"
            error = f"no installed plugin or module named '{plugin}' (installed: {installed})"
            return name or plugin, None, None, error
        return name or plugin, None, None, f"failed to import {target} ({type(exc).__name__}: {exc})"
    except Exception as exc:
        return name or plugin, None, None, f"failed to import {target} ({type(exc).__name__}: {exc})"
    return name or plugin, obj, module, None


def _hook_specs(obj: object, hook: str) -> list[Any]:
    fn = getattr(obj, hook, None)
    if not callable(fn):
        return []
    try:
        return list(fn() or [])
    except Exception:  # recorded by load_registry, reported by the "load" check
        return []


def _wanted_models(obj: object) -> tuple[set[str], set[str]]:
    """Models of other plugins this one adds to: ``(all, those of its styles and converters)``.

    A plugin adds to another plugin's model with styles, converters or ``<model>.<variant>`` builders.
    """
    own = {m.name for m in _hook_specs(obj, "anime_register_models") if isinstance(m, ModelSpec)}
    wanted = {
        s.model
        for hook in ("anime_register_styles", "anime_weights_converters")
        for s in _hook_specs(obj, hook)
        if isinstance(s, (StyleSpec, WeightsConverter))
    }
    prefixes = {
        s.name.split(".")[0]
        for hook in ("anime_register_generators", "anime_register_discriminators")
        for s in _hook_specs(obj, hook)
        if isinstance(s, (GeneratorSpec, DiscriminatorSpec)) and isinstance(s.name, str)
    }
    return (wanted | prefixes) - own, wanted - own


def _required(name: str, obj: object, requires: Sequence[str] | None) -> tuple[list[tuple[str, object]], list[str]]:
    """The installed plugins providing the models this plugin adds styles, converters or builders to."""
    problems: list[str] = []
    if requires is None:
        candidates, needed = _wanted_models(obj)
        if not candidates:
            return [], []
        full = load_registry()
        requires = sorted({full.models[m].plugin for m in candidates if m in full.models} - {name})
        # builder names that match no model are a naming problem (the "names" check), not a missing plugin
        problems += [
            f"its styles or converters are for model '{m}', which no installed plugin registers"
            for m in sorted(needed - set(full.models))
        ]
    deps: list[tuple[str, object]] = []
    for dep in requires:
        dep_name, dep_obj, _, error = resolve(dep, None)
        if error or dep_obj is None:
            problems.append(f"required plugin '{dep}' is unusable: {error}")
        else:
            deps.append((dep_name, dep_obj))
    return deps, problems


def load_subject(
    plugin: str | ModuleType | object, name: str | None, requires: Sequence[str] | None
) -> tuple[Subject | None, list[str]]:
    """The plugin in its isolated registry, and the problems met on the way (``None`` if it does not import)."""
    name, obj, module, error = resolve(plugin, name)
    if obj is None:
        return None, [error or f"plugin '{name}' could not be loaded"]
    key = tuple(requires) if requires is not None else None
    try:
        reg, problems = _cached_registry(name, obj, key)
    except TypeError:  # an unhashable plugin object
        reg, problems = _build_registry(name, obj, key)
    return Subject(name, obj, module, reg), list(problems)


@lru_cache(maxsize=16)
def _cached_registry(name: str, obj: object, requires: tuple[str, ...] | None) -> tuple[Registry, tuple[str, ...]]:
    return _build_registry(name, obj, requires)


def _build_registry(name: str, obj: object, requires: tuple[str, ...] | None) -> tuple[Registry, tuple[str, ...]]:
    deps, problems = _required(name, obj, requires)
    reg = load_registry(extra=[*deps, (name, obj)], entry_points=False)
    return reg, tuple(problems)
