"""Inference for both directions of a trained CycleGAN (``anime run cyclegan --direction ...``).

A cyclegan weights file holds G (part ``generator``, photo -> anime) and F (part
``generator_inverse``, anime -> photo); ``--direction`` picks which one runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from anime_core.errors import UsageError
from anime_core.inference.pipeline import TranslatePipeline

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.specs import ModelSpec
    from anime_core.weights.files import LoadedWeights

DIRECTIONS = {"photo2anime": "generator", "anime2photo": "generator_inverse"}

DIRECTION_OPTION = click.Option(
    ["--direction"],
    type=click.Choice(list(DIRECTIONS)),
    default="photo2anime",
    show_default=True,
    help="photo2anime runs G, anime2photo runs the inverse generator F of the same weights file.",
)


class CycleGANPipeline(TranslatePipeline):
    """A :class:`TranslatePipeline` whose generator is G or F according to ``direction``."""

    @classmethod
    def from_weights(
        cls,
        spec: ModelSpec,
        registry: Registry,
        weights: LoadedWeights | None,
        generator_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> CycleGANPipeline:
        from anime_core.api import build_part
        from anime_core.weights.files import load_into

        direction = kwargs.get("direction") or "photo2anime"
        if direction not in DIRECTIONS:
            raise UsageError(f"unknown direction '{direction}'; use {' or '.join(DIRECTIONS)}")
        kwargs["direction"] = direction
        part = DIRECTIONS[direction]
        options = dict(generator_options or {})
        if weights is not None:
            options.update(weights.generator)
        gen = build_part(spec, "generator", registry=registry, **options)
        if weights is not None:
            if part not in weights.parts:
                raise UsageError(
                    f"{weights.path} has no '{part}' part for --direction {direction}; it holds "
                    f"{', '.join(weights.parts)}"
                )
            load_into(gen, weights.parts[part], f"weights file {weights.path} ({part})")
        return cls(spec, {"generator": gen}, **kwargs)
