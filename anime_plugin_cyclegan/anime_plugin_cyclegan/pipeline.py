"""Inference for both directions of a trained CycleGAN (``anime run cyclegan --direction ...``).

A cyclegan weights file holds G (part ``generator``, photo -> anime) and F (part
``generator_inverse``, anime -> photo); ``--direction`` picks which one runs.
"""

from __future__ import annotations

from typing import Any

from anime_core.errors import UsageError
from anime_core.inference.pipeline import TranslatePipeline
from anime_plugin_cyclegan.options import DIRECTIONS


class CycleGANPipeline(TranslatePipeline):
    """A :class:`TranslatePipeline` whose generator is G or F according to ``direction``."""

    def __init__(self, *args: Any, direction: str = "photo2anime", **kwargs: Any) -> None:
        self.direction_part(direction)
        super().__init__(*args, direction=direction, **kwargs)

    @staticmethod
    def direction_part(direction: str | None) -> str:
        direction = direction or "photo2anime"
        if direction not in DIRECTIONS:
            raise UsageError(f"unknown direction '{direction}'; use {' or '.join(DIRECTIONS)}")
        return DIRECTIONS[direction]

    @classmethod
    def weights_part(cls, options: dict[str, Any]) -> str:
        return cls.direction_part(options.get("direction"))

    @classmethod
    def part_hint(cls, options: dict[str, Any]) -> str:
        return f"for --direction {options.get('direction') or 'photo2anime'}"
