"""Paired training data of S. Abbas et al., "Ordinary to Anime: An Artistic & Technical Inquiry
using Auto Encoders", sections II.A, II.B.1 and Table III: the dataset kind ``ae.paired``.

II.A: a dataset of "pairs of normal images and their corresponding anime-style representations";
here two folders, ``data.photo`` and ``data.anime``, whose files match by name (a mismatch is an
error listing the unmatched names, :func:`anime_core.files.match_pairs`).
II.B.1: "scaling for consistency" and "noise reduction": every pair is resized (short side) and
cropped to ``train.image_size`` (256 in II.D), and ``data.denoise`` optionally filters the input
photos (``median`` or ``gaussian``, kernel ``data.denoise_size``; the paper names no filter, and
an input-only filter at training time is a train/inference mismatch, so it is off by default).
Table III: 40 training and 10 validation samples, i.e. ``data.val_fraction: 0.2``; the split is a
seeded permutation (``train.seed``), the same on every run and process. The paper mentions no
augmentation, so crops are central unless ``data.augment`` turns on random crops and flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, ImageFilter
from torchvision import tv_tensors
from torchvision.transforms import v2

from anime_core.errors import ConfigError
from anime_core.training.data import PairedDataset, load_rgb, paired_files

if TYPE_CHECKING:
    from anime_plugin_ae.config import AEConfig

Pair = tuple[Path, Path]


def denoiser(kind: str, size: int = 3) -> Any:
    """A PIL filter for ``data.denoise``: ``none`` (None), ``median`` or ``gaussian`` (radius size/2)."""
    if kind == "none":
        return None
    if kind == "median":
        if size < 3 or size % 2 == 0:
            raise ConfigError(f"data.denoise_size must be an odd number >= 3 for the median filter, not {size}")
        return ImageFilter.MedianFilter(size)
    if kind == "gaussian":
        return ImageFilter.GaussianBlur(size / 2)
    raise ConfigError(f"data.denoise '{kind}' is not one of none, median, gaussian")


def pair_transform(image_size: int, augment: bool = False) -> v2.Compose:
    """Joint transform of a (photo, anime) pair: resize, crop (random + flip with ``augment``), [-1, 1]."""
    ops: list[Any] = [v2.Resize(image_size, antialias=True)]
    ops += [v2.RandomCrop(image_size), v2.RandomHorizontalFlip()] if augment else [v2.CenterCrop(image_size)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    return v2.Compose(ops)


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Seeded train/validation split; a positive fraction keeps at least one pair on each side."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1), not {val_fraction}")
    n_val = round(len(pairs) * val_fraction)
    if val_fraction > 0:
        if len(pairs) < 2:
            raise ConfigError("a validation split needs two or more pairs; add data or set data.val_fraction=0")
        n_val = min(max(n_val, 1), len(pairs) - 1)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [pairs[i] for i in train], [pairs[i] for i in val]


class DenoisedPairs(PairedDataset):
    """:class:`PairedDataset` whose photos (the network inputs) go through an optional PIL filter first."""

    def __init__(self, pairs: Sequence[Pair], image_size: int, seed: int, transform: Any, denoise: Any) -> None:
        super().__init__(None, None, image_size, seed=seed, transform=transform, pairs=pairs)
        self.denoise = denoise

    def load(self, index: int) -> dict[str, torch.Tensor]:
        p, a = self.pairs[index]
        photo, anime = load_rgb(p), load_rgb(a)
        if self.denoise is not None:
            photo = photo.filter(self.denoise)
        if anime.size != photo.size:
            anime = anime.resize(photo.size, Image.Resampling.BICUBIC)
        x, y = self.transform(
            tv_tensors.Image(v2.functional.pil_to_tensor(photo)), tv_tensors.Image(v2.functional.pil_to_tensor(anime))
        )
        return {"photo": x, "anime": y}


def paired_split(config: AEConfig, train: bool = True) -> DenoisedPairs:
    """Dataset kind ``ae.paired``: the training pairs, or with ``train=False`` the validation pairs (maybe none)."""
    data = config.data
    if data.photo is None or data.anime is None:
        raise ConfigError("paired training needs data.photo=DIR and data.anime=DIR (files matched by name)")
    size, seed = config.train.image_size, config.train.seed
    train_pairs, val_pairs = split_pairs(paired_files(data.photo, data.anime), data.val_fraction, seed)
    denoise = denoiser(data.denoise, data.denoise_size)
    augment = train and data.augment  # validation crops stay central
    return DenoisedPairs(train_pairs if train else val_pairs, size, seed, pair_transform(size, augment), denoise)
