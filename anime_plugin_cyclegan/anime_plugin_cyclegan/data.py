"""Training data: unpaired photo and anime folders with the augmentation of Sharma & Das, "A CycleGAN
Framework for Anime Style Image Synthesis based on U-Net and Self-Attention" (section 3.2).

Each image is resized with the LANCZOS filter so its short side is ``data.load_size`` (default:
``train.image_size``, 256 in the paper), randomly cropped to ``train.image_size``, randomly
flipped left-right (``RandomHorizontalFlip``) and colour-jittered (``ColorJitter``; the paper
gives no strengths, the defaults are mild). Style (anime) images may first go through one of the
PIL filters the paper mentions for refining them: ``sharpen``, ``smooth`` or ``blur``.
Setting ``data.load_size=286`` gives CycleGAN's resize-286/crop-256 jitter instead.

Registered as the dataset kind ``cyclegan`` (the model's ``ModelSpec.dataset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode, v2

from anime_core.errors import ConfigError
from anime_core.training.data import UnpairedDataset

if TYPE_CHECKING:
    from anime_plugin_cyclegan.config import CycleGANConfig

FILTERS = {"sharpen": ImageFilter.SHARPEN, "smooth": ImageFilter.SMOOTH, "blur": ImageFilter.BLUR}


class PILFilter:
    """Apply a named ``PIL.ImageFilter`` to a PIL image (Sharma & Das, section 3.2: style-image enhancement)."""

    def __init__(self, name: str) -> None:
        if name not in FILTERS:
            raise ConfigError(f"data.anime_filter '{name}' is not one of none, {', '.join(FILTERS)}")
        self.name = name

    def __call__(self, image: Image.Image) -> Image.Image:
        return image.filter(FILTERS[self.name])


def transform(
    image_size: int,
    load_size: int | None = None,
    color_jitter: Sequence[float] = (0.1, 0.1, 0.1, 0.02),
    pil_filter: str = "none",
) -> v2.Compose:
    """PIL image -> float tensor in [-1, 1] of side ``image_size`` (see the module docstring)."""
    load_size = int(load_size or image_size)
    if load_size < image_size:
        raise ConfigError(f"data.load_size ({load_size}) must be at least train.image_size ({image_size})")
    ops: list[Any] = [] if pil_filter == "none" else [PILFilter(pil_filter)]
    ops += [v2.Resize(load_size, interpolation=InterpolationMode.LANCZOS), v2.RandomCrop(image_size),
            v2.RandomHorizontalFlip()]
    jitter = [float(v) for v in color_jitter]
    if len(jitter) != 4:
        raise ConfigError("data.color_jitter takes four numbers: [brightness, contrast, saturation, hue]")
    if any(jitter):
        ops.append(v2.ColorJitter(*jitter))
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    return v2.Compose(ops)


def build_dataset(config: CycleGANConfig, train: bool = True) -> UnpairedDataset:
    """The unpaired ``{"photo", "anime"}`` dataset of the run config."""
    del train  # one augmented training set: the model has no held-out split
    data, size = config.data, config.train.image_size
    return UnpairedDataset(
        data.photo,
        data.anime,
        size,
        seed=config.train.seed,
        photo_transform=transform(size, data.load_size, data.color_jitter),
        anime_transform=transform(size, data.load_size, data.color_jitter, data.anime_filter),
    )
