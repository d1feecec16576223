"""The run-mode hook: what ``anime run`` asks a pipeline for, and the images a mode hands back.

``Pipeline.run_mode(request)`` returns a :class:`ModeOutput` (images plus how to name and lay
them out) or ``None`` to translate the input files. The runner (:mod:`anime_core.runner`) names,
checks and writes what it gets, so a plugin's extra mode (a latent walk, a class sample) is
compute only. The module imports no torch; the images are tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anime_core.errors import UsageError
from anime_core.inference import io

if TYPE_CHECKING:
    import torch
    from PIL import Image

AUTO_TILE_PIXELS = 2048 * 2048  # larger images are tiled even without --tile (``TranslatePipeline.tile_for``)
DEFAULT_TILE = 1024  # the tile side then


def read_image(path: str | Path, max_pixels: int = io.DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image named by an option (e.g. ``--interpolate A B``); a bad one is a usage error naming it."""
    try:
        return io.decode(Path(path), max_pixels)
    except io.BadImage as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class RunRequest:
    """The common options of ``anime run`` that a mode may use; ``read`` opens an image named in an option."""

    inputs: tuple[str, ...] = ()
    num: int = 16
    seed: int = 0
    size: int | None = None
    batch_size: int = 1
    read: Callable[[str | Path], Image.Image] = read_image


@dataclass(frozen=True)
class ModeOutput:
    """Images (N, 3, H, W) in [0, 1] for the CLI to write.

    ``-o FILE.png`` gets one sheet of ``nrow`` images per row, ``padding`` px apart. A folder
    gets ``NAME.png`` (that sheet) or, with ``frames``, one file per image: ``NAME-000.png`` ...
    """

    images: torch.Tensor
    name: str
    nrow: int
    padding: int = 2
    frames: bool = False
