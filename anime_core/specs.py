"""The spec types plugins register through the hooks in :mod:`anime_core.hookspecs`.

A spec is plain data plus builder callables, so a registry listing is cheap (nothing is
built until asked) and a plugin's specs can be checked by :mod:`anime_core.testing`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import click
    import torch
    from torch import nn

    from anime_core.inference.pipeline import Pipeline
    from anime_core.training.task import TrainingTask

ModelKind = Literal["translate", "generate"]
StateDict = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class GeneratorSpec:
    """A named generator builder, e.g. ``animegan.v1``. ``build(**options) -> nn.Module``."""

    name: str
    build: Callable[..., nn.Module]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class DiscriminatorSpec:
    """A named discriminator builder, e.g. ``cyclegan.patchgan70``."""

    name: str
    build: Callable[..., nn.Module]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class LossSpec:
    """A named, reusable loss: ``build(**options)`` returns a callable ``nn.Module``."""

    name: str
    build: Callable[..., nn.Module]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset kind (``images``, ``unpaired``, ``paired``, ``noise``).

    ``build(config, train=True)`` takes the resolved run config and returns a
    ``torch.utils.data.Dataset`` whose items are dicts of tensors.
    """

    name: str
    build: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class WeightsSource:
    """Where a pretrained file comes from and how to check it.

    ``sha256`` or ``git_sha1`` (the git blob SHA-1, what GitHub publishes) must be set, or at
    least ``sha256_prefix``: the leading hex digits some hosts put in file names
    (``vgg19-dcbb9e9d.pth``), which is what ``torch.hub``'s ``check_hash`` verifies.
    ``layout`` names the checkpoint layout: ``native`` or a registered converter's name.
    ``size`` is the published size in bytes, where known.
    """

    url: str
    sha256: str | None = None
    git_sha1: str | None = None
    sha256_prefix: str | None = None
    layout: str = "native"
    filename: str | None = None
    size: int | None = None  # published size in bytes: a download stops there instead of filling the disk

    @property
    def file_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StyleSpec:
    """A pretrained style of a model, e.g. ``animegan:paprika``.

    ``generator`` holds generator options the weights need (``{"variant": "v2"}``);
    ``preprocess`` holds inference defaults (``{"size": 512, "center_crop": True}``).
    """

    model: str
    name: str
    source: WeightsSource
    generator: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    license: str = ""
    description: str = ""
    plugin: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}:{self.name}"


@dataclass(frozen=True)
class WeightsConverter:
    """Turns a foreign checkpoint layout into a native generator state dict.

    ``matches(state)`` recognises the layout from its keys; ``convert(state)`` returns
    ``(native_state, generator_options)`` where the options select the architecture the
    weights belong to (``{"variant": "v2"}``).
    """

    name: str
    model: str
    matches: Callable[[Mapping[str, torch.Tensor]], bool]
    convert: Callable[[Mapping[str, torch.Tensor]], tuple[StateDict, dict[str, Any]]]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One entry a user names on the command line: a recipe of nets, losses, task and defaults.

    ``config`` is the plugin's default YAML (``configs/default.yaml``); ``presets`` maps
    preset names usable as ``--config NAME`` to further YAML files. ``run_options`` are extra
    click options for ``anime run MODEL`` whose values reach ``pipeline`` as keyword arguments.
    ``prepare`` is an optional data-preparation step (``anime prepare MODEL``).
    """

    name: str
    kind: ModelKind
    generator: str
    discriminator: str | None = None
    task: type[TrainingTask] | None = None
    config: Path | None = None
    presets: Mapping[str, Path] = field(default_factory=dict)
    losses: tuple[str, ...] = ()
    dataset: str | None = None
    paper: str = ""
    description: str = ""
    pipeline: type[Pipeline] | None = None
    run_options: tuple[click.Option, ...] = ()
    prepare: Callable[[dict[str, Any]], Any] | None = None
    plugin: str = ""
