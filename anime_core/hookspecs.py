"""The hooks a plugin implements (pluggy project ``anime``, entry-point group ``anime.plugins``).

A plugin is a module with ``@hookimpl`` functions; each returns a list of specs. The core
merges them into one :class:`anime_core.registry.Registry`; a name registered twice is an
error naming both plugins. The core's own losses and dataset kinds come through the same hooks
(:mod:`anime_core.builtin`).
"""

from __future__ import annotations

import pluggy

from anime_core.specs import (
    DatasetSpec,
    DiscriminatorSpec,
    GeneratorSpec,
    LossSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
)

PROJECT = "anime"
ENTRY_POINT_GROUP = "anime.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def anime_register_generators() -> list[GeneratorSpec]:
    """Generator builders, named ``<model>.<variant>`` by convention (``animegan.v1``)."""


@hookspec
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    """Discriminator builders."""


@hookspec
def anime_register_losses() -> list[LossSpec]:
    """Reusable named losses (``lsgan``, ``cycle_l1``, ``gram_grayscale``...)."""


@hookspec
def anime_register_datasets() -> list[DatasetSpec]:
    """Dataset kinds (``images``, ``unpaired``, ``paired``, ``noise``...)."""


@hookspec
def anime_register_models() -> list[ModelSpec]:
    """Models: the names users type (``animegan``), each a recipe of nets, losses, task and defaults."""


@hookspec
def anime_register_styles() -> list[StyleSpec]:
    """Pretrained styles of a model (``animegan:paprika``); style-only plugins implement just this."""


@hookspec
def anime_weights_converters() -> list[WeightsConverter]:
    """Converters from foreign checkpoint layouts to native state dicts."""
