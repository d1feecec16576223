"""Training pairs of ``pixelsake-sr`` (Shrivastava et al., "PixelSake: Deep Convolution Generative
Adversarial Network", section 4: a 32x32 input up-sampled four times): the low-resolution inputs
are made by bicubic down-sampling of the training images, so no paired data is needed (the
protocol of Ledig et al., "Photo-realistic single image super-resolution using a generative
adversarial network", section 3.2, and of Wang et al., "ESRGAN: Enhanced super-resolution
generative adversarial networks", section 4.1). A fixed, seeded share of the images is held out to
report PSNR during training.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from anime_core.errors import ConfigError
from anime_core.files import list_images
from anime_core.training.data import SeededDataset, load_rgb, readable, train_transform


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(..., 3, H, W) in [-1, 1] -> (..., 3, H/scale, W/scale), antialiased bicubic (MATLAB imresize-like)."""
    x = hr if hr.dim() == 4 else hr[None]
    lr = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
    return lr if hr.dim() == 4 else lr[0]


def split_files(files: Sequence[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """A seeded held-out split: ``round(val_fraction * n)`` files (at least one if ``val_fraction > 0``)."""
    files = list(files)
    n_val = max(1, round(val_fraction * len(files))) if val_fraction > 0 else 0
    if n_val >= len(files):
        raise ConfigError(f"{len(files)} images cannot be split with data.val_fraction={val_fraction}; add images")
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    val = sorted(order[:n_val])
    return [f for i, f in enumerate(files) if i not in set(val)], [files[i] for i in val]


class SRPairDataset(SeededDataset):
    """Items ``{"lr": (3, s/scale, s/scale), "hr": (3, s, s)}`` in [-1, 1]; random crop and flip when training,
    a centre crop otherwise."""

    def __init__(self, files: Sequence[Path], hr_size: int, scale: int = 4, train: bool = True, seed: int = 0) -> None:
        super().__init__(seed)
        self.held_out: SRPairDataset | None = None  # the training split's held-out split (see sr_datasets)
        if hr_size % scale:
            raise ConfigError(f"train.image_size={hr_size} must be a multiple of the scale {scale}")
        self.files, self.scale = list(files), scale
        self.transform = train_transform(hr_size) if train else v2.Compose([
            v2.ToImage(), v2.Resize(hr_size, antialias=True), v2.CenterCrop(hr_size),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        hr = self.transform(load_rgb(self.files[index]))
        return {"lr": bicubic_down(hr, self.scale), "hr": hr}


def sr_datasets(cfg: Any) -> tuple[SRPairDataset, SRPairDataset | None]:
    """Training and held-out pair datasets from ``data.anime`` (or ``data.photo``); the training one
    also holds the held-out one as ``held_out``."""
    root = cfg.data.anime or cfg.data.photo
    files = readable(list_images(root, "image folder (data.anime)", ConfigError))
    seed = cfg.train.seed
    train_files, val_files = split_files(files, cfg.data.val_fraction, seed)
    size, scale = cfg.train.image_size, int(cfg.generator["scale"])
    val = SRPairDataset(val_files, size, scale, train=False, seed=seed) if val_files else None
    train = SRPairDataset(train_files, size, scale, train=True, seed=seed)
    train.held_out = val
    return train, val


def build_sr_pairs(cfg: Any, train: bool = True) -> SRPairDataset:
    """Dataset kind ``sr_pairs``: the training split (with its ``held_out`` split); ``train=False``: the
    held-out split."""
    tr, val = sr_datasets(cfg)
    if not train and val is None:
        raise ConfigError("no held-out split: set data.val_fraction above 0")
    return tr if train else val  # type: ignore[return-value]
