"""The plugin contract: checks every plugin runs in its own CI (DESIGN.md "plugins/").

A plugin's test module inherits the checks::

    from anime_core.testing import PluginContract

    class TestContract(PluginContract):
        plugin = "example"        # its entry-point name in "anime.plugins", or the plugin module

or calls them directly: ``check_plugin("example") -> list[str]`` (empty when valid) and
``assert_plugin_valid("example")``. The plugin is inspected in isolation with
:func:`anime_core.registry.load_registry` (``entry_points=False``): only the core, the plugin
and the installed plugins that register the models its styles or converters are for.

What is checked (each name in :data:`CHECKS` is one ``PluginContract`` test):

``load``
    The plugin imports, its hooks do not raise, its specs are valid (styles with a URL and a
    hash, known kinds) and its names clash with no required plugin; it registers something.
``models``
    Every model's generator and discriminator build from the default config; a ``translate``
    generator has an int ``stride`` and maps ``(1, 3, H, W)`` (sides multiples of the stride,
    at least 32) to ``(1, 3, H*s, W*s)`` with ``s`` the pipeline's ``out_scale``; a ``generate``
    generator has an int ``latent_dim`` and maps ``(1, latent_dim)`` to ``(1, 3, H, W)``; the
    discriminator accepts the generator's output; outputs are finite. The training task builds
    from the default config (``build(steps_per_epoch=1)``) with a ``generator`` net, optimizers
    and ``export_parts`` it owns (unset ``data.photo``/``data.anime`` point at a few random 128 px
    images, so a task may look at its data in ``build``); the pipeline class fits the kind; losses and the dataset kind
    named by the model are registered; the model cites its paper.
``configs``
    The default YAML and every preset parse; values of core keys have the core's types; the
    presets set no key the defaults lack; the ``generator:``/``discriminator:`` sections of the
    defaults and of every preset are exactly builder keyword arguments; ``data.kind`` is a
    registered dataset kind.
``styles``
    Each style: an ``http(s)`` URL; a well-formed ``sha256`` (64 hex), ``git_sha1`` (40 hex) or
    ``sha256_prefix`` (>= 8 hex); a layout that is ``native`` or a converter registered for its
    model; generator options the model's builder accepts; typed preprocess defaults; a license note.
``converters``
    Each converter: for a known model; ``matches`` rejects an unrelated state dict; a sample in
    its layout is recognised by ``load_weights`` as this layout, and ``convert`` yields a state that
    loads *strictly* into the generator built with the returned options, which then runs.
    Samples: the plugin module may define ``contract_samples() -> {converter name: state dict}``
    (tensors in the foreign layout, e.g. a randomly initialised copy of the original network's
    keys and shapes). Without one the checker derives candidates from the generator's own state
    (default options, then each style's options), with and without a ``module.`` prefix
    (DataParallel saves); a converter that matches none of them needs ``contract_samples``.
``losses``
    Each loss builds with its defaults and returns a finite scalar that back-propagates: GAN
    losses through ``d_loss(real, fake)``/``g_loss(fake)``, other losses called as ``loss(a, b)``
    on two image batches. Losses taking other arguments are skipped (see :attr:`Report.skipped`).
``builders``
    Generator/discriminator builders no model names: if they build without arguments, they return
    an ``nn.Module``.

Nothing downloads: the checks run with ``ANIME_OFFLINE=1`` and every config key whose name
contains ``pretrained`` is set to ``false`` before the task is built. Sizes are small (32-64 px).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import inspect
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from anime_core.config import base_defaults, coerce, deep_merge, model_defaults, read_yaml
from anime_core.errors import AnimeError
from anime_core.hookspecs import ENTRY_POINT_GROUP
from anime_core.registry import Registry, call_builder, load_registry
from anime_core.specs import ModelSpec, StyleSpec, WeightsConverter

__all__ = [
    "CHECKS",
    "PluginContract",
    "Report",
    "assert_plugin_valid",
    "check_plugin",
    "installed_plugins",
    "run_contract",
]

CHECKS = ("load", "models", "configs", "styles", "converters", "losses", "builders")
MIN_SIDE = 32  # smallest image side the shape checks use
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_PREPROCESS_TYPES: dict[str, type | tuple[type, ...]] = {"size": int, "center_crop": bool}
_UNRELATED = {"contract.unrelated.weight": torch.zeros(1)}


@dataclass
class Report:
    """What the contract found for one plugin: ``problems`` fail it, ``skipped`` explains what it could not check."""

    plugin: str
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    registry: Registry | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"plugin '{self.plugin}' breaks the anime-core plugin contract:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


# -- finding and loading the plugin ------------------------------------------------------------------
def installed_plugins() -> list[str]:
    """Names of the plugins installed in the ``anime.plugins`` entry-point group, sorted."""
    return sorted({ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)})


def _entry_point(name: str) -> md.EntryPoint | None:
    return next((ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name), None)


def _resolve(plugin: str | ModuleType | object, name: str | None) -> tuple[str, object | None, str | None]:
    """``(name, plugin object, load error)``: an entry-point name, a dotted module name or an object."""
    if not isinstance(plugin, str):
        if name is None:
            module = getattr(plugin, "__name__", type(plugin).__name__)
            eps = md.entry_points(group=ENTRY_POINT_GROUP)
            name = next((ep.name for ep in eps if ep.value == module), module)
        return name, plugin, None
    ep = _entry_point(plugin)
    target = ep.value if ep is not None else plugin
    try:
        obj = ep.load() if ep is not None else importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        if ep is None and exc.name == plugin.split(".")[0]:
            installed = ", ".join(installed_plugins()) or "none"
            return name or plugin, None, f"no installed plugin or module named '{plugin}' (installed: {installed})"
        return name or plugin, None, f"failed to import {target} ({type(exc).__name__}: {exc})"
    except Exception as exc:
        return name or plugin, None, f"failed to import {target} ({type(exc).__name__}: {exc})"
    return name or plugin, obj, None


def _hook_specs(obj: object, hook: str) -> list[Any]:
    fn = getattr(obj, hook, None)
    if not callable(fn):
        return []
    try:
        return list(fn() or [])
    except Exception:  # recorded by load_registry, reported by the "load" check
        return []


def _required(name: str, obj: object, requires: Sequence[str] | None) -> tuple[list[tuple[str, object]], list[str]]:
    """The installed plugins providing the models this plugin's styles/converters are for."""
    problems: list[str] = []
    if requires is None:
        own = {m.name for m in _hook_specs(obj, "anime_register_models") if isinstance(m, ModelSpec)}
        wanted = {
            s.model
            for hook in ("anime_register_styles", "anime_weights_converters")
            for s in _hook_specs(obj, hook)
            if isinstance(s, (StyleSpec, WeightsConverter))
        } - own
        if not wanted:
            return [], []
        full = load_registry()
        requires = sorted({full.models[m].plugin for m in wanted if m in full.models} - {name})
        problems += [
            f"its styles or converters are for model '{m}', which no installed plugin registers"
            for m in sorted(wanted - set(full.models))
        ]
    deps: list[tuple[str, object]] = []
    for dep in requires:
        dep_name, dep_obj, err = _resolve(dep, None)
        if err or dep_obj is None:
            problems.append(f"required plugin '{dep}' is unusable: {err}")
        else:
            deps.append((dep_name, dep_obj))
    return deps, problems


# -- small helpers --------------------------------------------------------------------------------
@contextlib.contextmanager
def _offline() -> Iterator[None]:
    old = os.environ.get("ANIME_OFFLINE")
    os.environ["ANIME_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ANIME_OFFLINE", None)
        else:
            os.environ["ANIME_OFFLINE"] = old


def _no_pretrained(cfg: Any) -> Any:
    """A copy of ``cfg`` with every ``*pretrained*`` key set to false, so nothing downloads."""
    if isinstance(cfg, Mapping):
        return {
            k: (False if "pretrained" in str(k) and isinstance(v, bool) else _no_pretrained(v)) for k, v in cfg.items()
        }
    return cfg


def _with_sample_data(cfg: dict[str, Any], folder: Path, n: int = 6, side: int = 128) -> dict[str, Any]:
    """``cfg`` with unset ``data.photo``/``data.anime`` pointing at ``n`` small random images in ``folder``."""
    import numpy as np
    from PIL import Image

    data = dict(cfg.get("data") or {})
    rng = np.random.default_rng(0)
    for key in ("photo", "anime"):
        if data.get(key) is None:
            (folder / key).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / key / f"{i}.png")
            data[key] = str(folder / key)
    return {**cfg, "data": data}


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, Mapping):
        return [t for o in out.values() for t in _tensors(o)]
    return []


def _int_attr(module: nn.Module, attr: str) -> int | None:
    value = getattr(module, attr, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _side(stride: int) -> int:
    return stride * math.ceil(MIN_SIDE / stride)


def _translate_input(stride: int) -> torch.Tensor:
    side = _side(stride)
    width = side + stride if stride <= 32 else side  # non-square catches swapped H/W when cheap
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, side, width, generator=gen) * 2 - 1


def _pipeline_scale(spec: ModelSpec, gen: nn.Module) -> int:
    """The pipeline's ``out_scale`` for this generator (a class attribute or a property reading the net)."""
    from anime_core.inference.pipeline import TranslatePipeline

    cls = spec.pipeline_class() or TranslatePipeline
    scale = inspect.getattr_static(cls, "out_scale", 1)
    if isinstance(scale, int):
        return scale
    try:
        return int(cls(spec, {"generator": gen}, device="cpu").out_scale)
    except Exception:
        return int(getattr(gen, "out_scale", getattr(gen, "scale", 1)))


@torch.no_grad()
def _run_generator(spec: ModelSpec, gen: nn.Module, what: str) -> tuple[torch.Tensor | None, list[str]]:
    """Forward one input through ``gen`` as the model's pipeline does; ``(raw output, problems)``.

    translate: the pipeline's ``forward`` maps a [0, 1] RGB batch (sides multiples of ``stride``) to
    ``(1, 3, H*s, W*s)`` in [0, 1]; its ``preprocess`` decides what the generator sees (RGB in
    [-1, 1] by default; e.g. a lightness channel for a colourisation model).
    generate: ``(1, latent_dim)`` -> ``(1, 3, H, W)``.
    """
    from anime_core.inference.pipeline import TranslatePipeline

    if not isinstance(gen, nn.Module):
        return None, [f"{what} builder returned {type(gen).__name__}, not an nn.Module"]
    gen.eval()
    if spec.kind == "generate":
        latent = _int_attr(gen, "latent_dim")
        if latent is None:
            return None, [f"{what} ({type(gen).__name__}) has no int attribute 'latent_dim' >= 1"]
        z = torch.randn(1, latent, generator=torch.Generator().manual_seed(0))
        try:
            y = gen(z)
        except Exception as exc:
            return None, [f"{what} forward on a {tuple(z.shape)} latent failed ({_err(exc)})"]
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else None
        if shape is None or len(shape) != 4 or shape[:2] != (1, 3):
            return None, [f"{what} maps {tuple(z.shape)} to {shape or type(y).__name__}, expected (1, 3, H, W)"]
        if not torch.isfinite(y).all():
            return None, [f"{what} output has NaN or inf values"]
        return y, []
    stride = _int_attr(gen, "stride")
    if stride is None:
        return None, [f"{what} ({type(gen).__name__}) has no int attribute 'stride' >= 1"]
    x = (_translate_input(stride) + 1) / 2
    cls = spec.pipeline_class() or TranslatePipeline
    try:
        pipe = cls(spec, {"generator": gen}, device="cpu")
    except Exception as exc:
        return None, [f"{what}: pipeline {cls.__name__} does not construct ({_err(exc)})"]
    scale = _pipeline_scale(spec, gen)
    expected = (1, 3, x.shape[2] * scale, x.shape[3] * scale)
    try:
        out = pipe.forward(x)
        y = gen(pipe.preprocess(x))
    except Exception as exc:
        return None, [f"{what} forward on a {tuple(x.shape)} image failed ({_err(exc)})"]
    if tuple(out.shape) != expected:
        return None, [f"{what} maps {tuple(x.shape)} to {tuple(out.shape)}, expected {expected}"]
    if not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        return None, [f"{what} pipeline output is not finite and within [0, 1]"]
    raw = _tensors(y)
    return (raw[0] if raw else None), []


@torch.no_grad()
def _run_discriminator(disc: nn.Module, image: torch.Tensor, what: str) -> list[str]:
    if not isinstance(disc, nn.Module):
        return [f"{what} builder returned {type(disc).__name__}, not an nn.Module"]
    disc.eval()
    try:
        out = disc(image)
    except Exception as exc:
        return [f"{what} failed on the generator's {tuple(image.shape)} output ({_err(exc)})"]
    tensors = _tensors(out)
    if not tensors:
        return [f"{what} returned {type(out).__name__}, expected a tensor or a list of tensors"]
    if not all(torch.isfinite(t).all() for t in tensors):
        return [f"{what} output has NaN or inf values"]
    return []


# -- the checks -------------------------------------------------------------------------------------
def _check_load(reg: Registry, name: str, report: Report) -> None:
    info = reg.plugins.get(name)
    if info is None:
        report.problems.append("was not registered")
        return
    report.problems += list(info.errors)
    if not info.errors and not info.counts:
        report.problems.append("registers nothing: implement at least one hook of anime_core.hookspecs")


def _check_models(reg: Registry, name: str, report: Report) -> None:
    from anime_core.inference.pipeline import GeneratePipeline, Pipeline, TranslatePipeline
    from anime_core.training.task import TrainingTask

    for spec in _own(reg.models, name):
        m = f"model '{spec.name}'"
        if not spec.paper.strip():
            report.problems.append(f"{m} cites no paper (ModelSpec.paper)")
        if spec.dataset and spec.dataset not in reg.datasets:
            report.problems.append(f"{m} names unknown dataset kind '{spec.dataset}'")
        pipeline = spec.pipeline_class()
        if pipeline is not None:
            base = TranslatePipeline if spec.kind == "translate" else GeneratePipeline
            if not (isinstance(pipeline, type) and issubclass(pipeline, Pipeline)):
                report.problems.append(f"{m} pipeline is not a Pipeline subclass")
            elif not issubclass(pipeline, base):
                report.problems.append(f"{m} is '{spec.kind}' but its pipeline does not subclass {base.__name__}")
        try:
            gen = reg.build(spec, "generator")
        except Exception as exc:
            report.problems.append(f"{m}: generator '{spec.generator}' does not build ({_err(exc)})")
            continue
        y, problems = _run_generator(spec, gen, f"{m} generator '{spec.generator}'")
        report.problems += problems
        if spec.discriminator is not None:
            try:
                disc = reg.build(spec, "discriminator")
            except Exception as exc:
                report.problems.append(f"{m}: discriminator '{spec.discriminator}' does not build ({_err(exc)})")
            else:
                if y is not None:
                    report.problems += _run_discriminator(disc, y, f"{m} discriminator '{spec.discriminator}'")
        if spec.task is None:
            report.skipped.append(f"{m} has no training task")
            continue
        task_cls = spec.task_class()
        if not (isinstance(task_cls, type) and issubclass(task_cls, TrainingTask)):
            report.problems.append(f"{m} task is not a TrainingTask subclass")
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                task = task_cls(spec, _with_sample_data(_no_pretrained(model_defaults(spec)), Path(tmp)), reg)
                task.build(1)
        except Exception as exc:
            report.problems.append(f"{m}: task {task_cls.__name__}.build() fails on the default config ({_err(exc)})")
            continue
        if not isinstance(task.nets.get("generator"), nn.Module):
            report.problems.append(f"{m}: task {task_cls.__name__}.build() left no 'generator' in self.nets")
        if not task.optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in task.optimizers.values()):
            report.problems.append(f"{m}: task {task_cls.__name__}.build() created no torch optimizers")
        missing = [p for p in task.export_parts if p not in task.nets]
        if missing:
            report.problems.append(f"{m}: task export_parts {missing} are not in self.nets")


def _check_configs(reg: Registry, name: str, report: Report) -> None:
    base = base_defaults()
    for spec in _own(reg.models, name):
        m = f"model '{spec.name}'"
        if spec.config is None:
            report.problems.append(f"{m} ships no default config (ModelSpec.config)")
            continue
        try:
            own = read_yaml(spec.config)
            defaults = model_defaults(spec)
        except AnimeError as exc:
            report.problems.append(f"{m}: {exc}")
            continue
        report.problems += [f"{m} default config: {p}" for p in _core_types(base, own)]
        kind = defaults.get("data", {}).get("kind")
        if kind is not None and kind not in reg.datasets:
            report.problems.append(f"{m} default config: data.kind '{kind}' is not a registered dataset kind")
        configs = {"default config": defaults}
        for preset, path in spec.presets.items():
            try:
                configs[f"preset '{preset}'"] = deep_merge(defaults, read_yaml(path))
            except AnimeError as exc:
                report.problems.append(f"{m} preset '{preset}' ({path}): {exc}")
        for label, cfg in configs.items():
            for part, builder in (("generator", spec.generator), ("discriminator", spec.discriminator)):
                section = cfg.get(part) or {}
                if builder is None:
                    if section:
                        report.problems.append(f"{m} {label} has a {part}: section but the model has no {part}")
                    continue
                table = reg.generators if part == "generator" else reg.discriminators
                if builder not in table:
                    report.problems.append(f"{m} names unknown {part} builder '{builder}'")
                    continue
                try:
                    call_builder(part, builder, table[builder].builder(), dict(section))
                except Exception as exc:
                    report.problems.append(f"{m} {label}: {part} section does not build ({_err(exc)})")


def _core_types(base: Mapping[str, Any], own: Mapping[str, Any], prefix: str = "") -> list[str]:
    problems = []
    for key, value in own.items():
        if key not in base:
            continue
        dotted = f"{prefix}{key}"
        default = base[key]
        if isinstance(default, Mapping):
            if isinstance(value, Mapping):
                problems += _core_types(default, value, f"{dotted}.")
            else:
                problems.append(f"'{dotted}' must be a mapping")
            continue
        try:
            coerce(dotted, default, value)
        except AnimeError as exc:
            problems.append(str(exc))
    return problems


def _check_styles(reg: Registry, name: str, report: Report) -> None:
    for style in _own(reg.styles, name):
        s = f"style '{style.key}'"
        src = style.source
        if not re.match(r"^https?://[^/\s]+/\S+$", src.url or ""):
            report.problems.append(f"{s} URL '{src.url}' is not an http(s) URL of a file")
        for attr, lengths, text in (
            ("sha256", (64,), "64"),
            ("git_sha1", (40,), "40"),
            ("sha256_prefix", range(8, 65), "8 to 64"),
        ):
            value = getattr(src, attr)
            if value is not None and not (_HEX.match(value) and len(value) in lengths):
                report.problems.append(f"{s} {attr} '{value}' is not {text} hex digits")
        layouts = {"native"} | {c.name for c in reg.converters_of(style.model)}
        if src.layout not in layouts:
            report.problems.append(
                f"{s} layout '{src.layout}' is neither 'native' nor a converter of '{style.model}' "
                f"({', '.join(sorted(layouts))})"
            )
        if not style.license.strip():
            report.problems.append(f"{s} has no license note (StyleSpec.license)")
        model = reg.models.get(style.model)
        if model is not None:
            try:
                reg.build(model, "generator", **dict(style.generator))
            except Exception as exc:
                report.problems.append(f"{s} generator options {dict(style.generator)} do not build ({_err(exc)})")
            if model.pipeline is None:
                for key, value in style.preprocess.items():
                    kind = _PREPROCESS_TYPES.get(key)
                    if kind is None:
                        report.problems.append(
                            f"{s} preprocess key '{key}' is unknown; use {', '.join(_PREPROCESS_TYPES)}"
                        )
                    elif not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1)):
                        report.problems.append(f"{s} preprocess '{key}' has the wrong type or value {value!r}")


def _samples(obj: object | None) -> dict[str, Mapping[str, torch.Tensor]]:
    fn = getattr(obj, "contract_samples", None)
    return dict(fn()) if callable(fn) else {}


def _derived_candidates(reg: Registry, model: ModelSpec) -> Iterator[dict[str, torch.Tensor]]:
    option_sets: list[dict[str, Any]] = [{}] + [dict(s.generator) for s in reg.styles_of(model.name).values()]
    seen: list[dict[str, Any]] = []
    for options in option_sets:
        if options in seen:
            continue
        seen.append(options)
        try:
            state = reg.build(model, "generator", **options).state_dict()
        except Exception:
            continue
        yield dict(state)
        yield {f"module.{k}": v for k, v in state.items()}


def _check_converters(reg: Registry, name: str, report: Report, obj: object | None) -> None:
    from anime_core.weights.files import load_into, load_weights

    try:
        samples = _samples(obj)
    except Exception as exc:
        report.problems.append(f"contract_samples() raised {_err(exc)}")
        samples = {}
    for conv in _own(reg.converters, name):
        c = f"converter '{conv.name}'"
        model = reg.models.get(conv.model)
        if model is None:
            report.problems.append(f"{c} is for unknown model '{conv.model}'")
            continue
        try:
            if conv.matches_fn()(dict(_UNRELATED)):
                report.problems.append(f"{c} matches an unrelated state dict; recognise the layout from its keys")
        except Exception as exc:
            report.problems.append(f"{c} matches() raised on an unrelated state dict ({_err(exc)})")
        sample = samples.get(conv.name)
        if sample is None:
            sample = next((s for s in _derived_candidates(reg, model) if _safe_match(conv, s)), None)
            if sample is None:
                report.problems.append(
                    f"{c}: no sample in its layout; define contract_samples() in the plugin module returning "
                    f"{{'{conv.name}': foreign_state_dict}}"
                )
                continue
        elif not _safe_match(conv, sample):
            report.problems.append(f"{c} does not match its own contract sample")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "foreign.pt"
            torch.save(dict(sample), path)
            try:
                loaded = load_weights(path, conv.model, reg)
            except Exception as exc:
                report.problems.append(f"{c}: load_weights failed on its sample ({_err(exc)})")
                continue
        if loaded.layout != conv.name:
            report.problems.append(f"{c}: its sample is recognised as layout '{loaded.layout}', not '{conv.name}'")
            continue
        try:
            native, options = conv.convert_fn()(sample)
            gen = reg.build(model, "generator", **dict(options))
            load_into(gen, native, f"the output of {c}")
        except Exception as exc:
            report.problems.append(f"{c}: converted weights do not load strictly ({_err(exc)})")
            continue
        report.problems += _run_generator(model, gen, f"{c} generator")[1]


def _safe_match(conv: WeightsConverter, state: Mapping[str, torch.Tensor]) -> bool:
    try:
        return bool(conv.matches_fn()(state))
    except Exception:
        return False


def _check_losses(reg: Registry, name: str, report: Report) -> None:
    for spec in _own(reg.losses, name):
        s = f"loss '{spec.name}'"
        try:
            loss = spec.builder()()
        except TypeError as exc:
            report.skipped.append(f"{s} needs build options ({exc})")
            continue
        except AnimeError as exc:  # e.g. pretrained backbone weights while offline
            report.skipped.append(f"{s} cannot build offline ({exc})")
            continue
        except Exception as exc:
            report.problems.append(f"{s} does not build with its defaults ({_err(exc)})")
            continue
        if not callable(loss):
            report.problems.append(f"{s} builder returned {type(loss).__name__}, which is not callable")
            continue
        gen = torch.Generator().manual_seed(0)
        calls: list[tuple[str, Any, tuple[torch.Tensor, ...]]] = []
        if callable(getattr(loss, "d_loss", None)) and callable(getattr(loss, "g_loss", None)):
            real, fake = (torch.randn(2, 1, 4, 4, generator=gen).requires_grad_() for _ in range(2))
            calls = [("d_loss", loss.d_loss, (real, fake)), ("g_loss", loss.g_loss, (fake,))]
        elif _positional(loss) == 2:
            a, b = (torch.rand(2, 3, 16, 16, generator=gen).mul(2).sub(1).requires_grad_() for _ in range(2))
            calls = [("forward", loss, (a, b))]
        else:
            report.skipped.append(f"{s} takes arguments other than (prediction, target)")
            continue
        for label, fn, args in calls:
            try:
                value = fn(*args)
            except Exception as exc:
                report.problems.append(f"{s} {label} raised on {[tuple(a.shape) for a in args]} ({_err(exc)})")
                continue
            if not (isinstance(value, torch.Tensor) and value.dim() == 0 and torch.isfinite(value)):
                report.problems.append(f"{s} {label} returned {value!r:.60}, expected a finite scalar tensor")
                continue
            if not value.requires_grad:
                report.problems.append(f"{s} {label} is not differentiable with respect to its inputs")


def _positional(fn: Any) -> int:
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _check_builders(reg: Registry, name: str, report: Report) -> None:
    used = {m.generator for m in reg.models.values()} | {m.discriminator for m in reg.models.values()}
    for kind, table in (("generator", reg.generators), ("discriminator", reg.discriminators)):
        for spec in _own(table, name):
            if spec.name in used:
                continue
            try:
                module = spec.builder()()
            except TypeError as exc:
                report.skipped.append(f"{kind} '{spec.name}' needs options to build ({exc})")
                continue
            except Exception as exc:
                report.problems.append(f"{kind} '{spec.name}' does not build with its defaults ({_err(exc)})")
                continue
            if not isinstance(module, nn.Module):
                report.problems.append(f"{kind} '{spec.name}' builder returned {type(module).__name__}")


def _own(table: Mapping[str, Any], plugin: str) -> list[Any]:
    return [spec for spec in table.values() if spec.plugin == plugin]


# -- entry points -------------------------------------------------------------------------------------
def run_contract(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = CHECKS,
) -> Report:
    """Run ``checks`` on ``plugin`` (entry-point name, dotted module name or plugin object).

    ``name`` is the name to register it under (default: its entry-point name). ``requires`` lists
    entry-point names of plugins it builds on; by default those providing the models its styles
    and converters are for.
    """
    unknown_checks = set(checks) - set(CHECKS)
    if unknown_checks:
        raise ValueError(f"unknown checks {sorted(unknown_checks)}; choose from {', '.join(CHECKS)}")
    name, obj, error = _resolve(plugin, name)
    report = Report(name)
    if obj is None:
        report.problems.append(error or "could not be loaded")
        return report
    with _offline():
        reg, problems = _registry(name, obj, tuple(requires) if requires is not None else None)
        report.registry = reg
        if "load" in checks:
            report.problems += problems
            _check_load(reg, name, report)
        for check in checks:
            try:
                if check == "models":
                    _check_models(reg, name, report)
                elif check == "configs":
                    _check_configs(reg, name, report)
                elif check == "styles":
                    _check_styles(reg, name, report)
                elif check == "converters":
                    _check_converters(reg, name, report, obj)
                elif check == "losses":
                    _check_losses(reg, name, report)
                elif check == "builders":
                    _check_builders(reg, name, report)
            except Exception as exc:  # a bug in a spec must show up as a problem, not crash the checker
                report.problems.append(f"the '{check}' check crashed ({_err(exc)})")
    return report


def _registry(name: str, obj: object, requires: tuple[str, ...] | None) -> tuple[Registry, list[str]]:
    try:
        return _cached_registry(name, obj, requires)
    except TypeError:  # unhashable plugin object
        return _build_registry(name, obj, requires)


@lru_cache(maxsize=16)
def _cached_registry(name: str, obj: object, requires: tuple[str, ...] | None) -> tuple[Registry, list[str]]:
    return _build_registry(name, obj, requires)


def _build_registry(name: str, obj: object, requires: tuple[str, ...] | None) -> tuple[Registry, list[str]]:
    deps, problems = _required(name, obj, requires)
    reg = load_registry(extra=[*deps, (name, obj)], entry_points=False)
    return reg, problems


def check_plugin(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = CHECKS,
) -> list[str]:
    """The contract's problems for ``plugin``, each one sentence; empty when it passes."""
    return run_contract(plugin, name=name, requires=requires, checks=checks).problems


def assert_plugin_valid(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = CHECKS,
) -> Report:
    """Raise ``AssertionError`` listing every problem; return the report (for ``skipped``) when valid."""
    report = run_contract(plugin, name=name, requires=requires, checks=checks)
    if report.problems:
        raise AssertionError(report.text())
    return report


class PluginContract:
    """Inherit in a plugin's tests: one test per contract check (pytest collects ``Test*`` subclasses).

    Set ``plugin`` to the entry-point name (as installed) or the plugin module; optionally ``requires``.
    """

    plugin: str | ModuleType | object | None = None
    requires: Sequence[str] | None = None

    def _assert(self, check: str) -> None:
        if self.plugin is None:
            raise AssertionError(f"{type(self).__name__} must set the class attribute 'plugin'")
        requires = tuple(self.requires) if self.requires is not None else None
        assert_plugin_valid(self.plugin, requires=requires, checks=(check,))

    def test_plugin_loads_cleanly(self) -> None:
        self._assert("load")

    def test_models_build_and_forward(self) -> None:
        self._assert("models")

    def test_configs_parse_and_fit_builders(self) -> None:
        self._assert("configs")

    def test_styles_are_verifiable(self) -> None:
        self._assert("styles")

    def test_converters_round_trip(self) -> None:
        self._assert("converters")

    def test_losses_return_scalars(self) -> None:
        self._assert("losses")

    def test_other_builders_build(self) -> None:
        self._assert("builders")

