"""Checks of how a plugin is wired: it loads, its entry-point module is light, its references resolve,
its registry names follow ``<model>``, ``<model>.<variant>``, ``<model>.d``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from anime_core.errors import PluginError
from anime_core.testing.report import Report, Subject, err

#: packages an entry-point module must not import (they take seconds and hundreds of MB to load)
HEAVY = ("torch", "timm", "torchvision")

# Run in a fresh interpreter: import the module, then list the heavy packages that got loaded and,
# for each, the source lines that imported it first (frozen importlib frames left out).
_PROBE = """
import importlib, json, sys, traceback
HEAVY = {heavy!r}
first = {{}}
class Spy:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in first:
            first[top] = [f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()[:-1]
                          if not f.filename.startswith("<")]
        return None
sys.meta_path.insert(0, Spy())
importlib.import_module(sys.argv[1])
print(json.dumps({{m: first.get(m, []) for m in HEAVY if m in sys.modules}}))
"""


def check_load(s: Subject, report: Report) -> None:
    """The plugin imports, its hooks do not raise, its specs are valid, clash with nothing and are not none."""
    info = s.registry.plugins.get(s.name)
    if info is None:
        report.problems.append("was not registered")
        return
    report.problems += list(info.errors)
    if not info.errors and not info.counts:
        report.problems.append("registers nothing: implement at least one hook of anime_core.hookspecs")


def check_light(s: Subject, report: Report) -> None:
    """Importing the entry-point module in a fresh interpreter loads no torch, timm or torchvision."""
    if s.module is None:
        report.skipped.append("the plugin was given as an object, not a module, so its imports were not checked")
        return
    heavy, error = _heavy_imports(s.module, tuple(sys.path))
    if error:
        report.problems.append(f"importing {s.module} in a fresh interpreter failed: {error}")
    for package, frames in heavy.items():
        where = f" (first from {' <- '.join(reversed(frames[-3:]))})" if frames else ""
        report.problems.append(
            f"importing {s.module} imports {package}{where}; an entry-point module must stay light: name builders, "
            f"tasks and pipelines by 'package.module:attribute' references and import {package} inside them"
        )


@lru_cache(maxsize=32)
def _heavy_imports(module: str, path: tuple[str, ...]) -> tuple[dict[str, list[str]], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p), "ANIME_OFFLINE": "1"}
    code = _PROBE.format(heavy=HEAVY)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, module], capture_output=True, text=True, env=env, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return {}, "it did not finish within 300 s"
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return {}, lines[-1] if lines else f"exit code {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def _references(spec: Any) -> list[tuple[str, Callable[[], Any]]]:
    """``(what, resolver)`` for every reference a spec declares."""
    methods = {
        "build": "builder",
        "task": "task_class",
        "schema": "schema_class",
        "pipeline": "pipeline_class",
        "prepare": "prepare_fn",
        "matches": "matches_fn",
        "convert": "convert_fn",
    }
    fields = {f.name for f in dataclasses.fields(spec)}
    return [(attr, getattr(spec, method)) for attr, method in methods.items() if attr in fields and getattr(spec, attr)]


def check_references(s: Subject, report: Report) -> None:
    """Every reference resolves (an import error names the module) to the kind of object its field needs."""
    from anime_core.inference.pipeline import GeneratePipeline, Pipeline, TranslatePipeline
    from anime_core.schema import RunConfig
    from anime_core.training.task import TrainingTask

    reg = s.registry
    tables = {
        "generator": reg.generators,
        "discriminator": reg.discriminators,
        "loss": reg.losses,
        "dataset kind": reg.datasets,
        "model": reg.models,
        "converter": reg.converters,
    }
    for kind, table in tables.items():
        for spec in s.own(table):
            for attr, resolve in _references(spec):
                what = f"{kind} '{spec.name}' {attr}"
                try:
                    obj = resolve()
                except Exception as exc:  # PluginError names the reference and the import error
                    report.problems.append(f"{what}: {exc if isinstance(exc, PluginError) else err(exc)}")
                    continue
                if attr == "task" and not (isinstance(obj, type) and issubclass(obj, TrainingTask)):
                    report.problems.append(f"{what} is not a TrainingTask subclass")
                elif attr == "schema" and not (dataclasses.is_dataclass(obj) and issubclass(obj, RunConfig)):
                    report.problems.append(f"{what} is not a dataclass subclassing anime_core.schema.RunConfig")
                elif attr == "pipeline":
                    base = TranslatePipeline if spec.kind == "translate" else GeneratePipeline
                    if not (isinstance(obj, type) and issubclass(obj, Pipeline)):
                        report.problems.append(f"{what} is not a Pipeline subclass")
                    elif not issubclass(obj, base):
                        report.problems.append(f"{what}: the model is '{spec.kind}' but its pipeline does not "
                                               f"subclass {base.__name__}")
                elif not isinstance(obj, type) and not callable(obj):
                    report.problems.append(f"{what} is a {type(obj).__name__}, not callable")


def model_of(name: str, models: Any) -> str | None:
    """The model a builder name belongs to (``cyclegan.unet`` -> ``cyclegan``), the longest that matches."""
    matches = [m for m in models if name == m or name.startswith(f"{m}.")]
    return max(matches, key=len) if matches else None


def check_names(s: Subject, report: Report) -> None:
    """Generators are ``<model>`` or ``<model>.<variant>``, discriminators ``<model>.d``, for a registered model.

    A model with ``variant_key`` builds only its ``<model>.<variant>`` generators: a bare ``<model>``
    builder beside them would never run.

    A name is how users and ``anime info`` find a net; a builder for another plugin's model
    (``animegan.v3``) is named after that model and passes too.
    """
    models = s.registry.models
    known = ", ".join(sorted(models)) or "none"
    for spec in s.own(s.registry.generators):
        model = model_of(spec.name, models)
        if model is None or spec.name == f"{model}.d":
            report.problems.append(
                f"generator '{spec.name}' is not named after a model: call it '<model>' or '<model>.<variant>' "
                f"(registered models: {known})"
            )
        elif spec.name == models[model].generator and models[model].variant_key:
            report.problems.append(
                f"generator '{spec.name}' is never built: model '{model}' chooses among its '{spec.name}.<variant>' "
                f"generators by {models[model].variant_key}; register it as '{spec.name}.<name>' to add a variant"
            )
    for spec in s.own(s.registry.discriminators):
        if not any(spec.name == f"{m}.d" for m in models):
            report.problems.append(
                f"discriminator '{spec.name}' is not named '<model>.d' after a model (registered models: {known})"
            )
