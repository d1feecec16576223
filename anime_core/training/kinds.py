"""The core's dataset kinds (``images``, ``unpaired``, ``paired``, ``noise``): config -> Dataset.

Registered by :mod:`anime_core.builtin` as references, so listing them imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from anime_core.config import get
from anime_core.training import data


def _seed(cfg: dict[str, Any]) -> int:
    return int(get(cfg, "train.seed", 0))


def images(cfg: dict[str, Any], train: bool = True) -> data.ImageFolderDataset:
    """One folder of images (``data.anime``, else ``data.photo``); class sub-folders with ``data.conditional``."""
    root = get(cfg, "data.anime") or get(cfg, "data.photo")
    return data.ImageFolderDataset(
        root, get(cfg, "train.image_size", 64), _seed(cfg), labels=bool(get(cfg, "data.conditional", False))
    )


def unpaired(cfg: dict[str, Any], train: bool = True) -> data.UnpairedDataset:
    """Photo and anime folders without correspondence."""
    photo, anime = get(cfg, "data.photo"), get(cfg, "data.anime")
    return data.UnpairedDataset(photo, anime, get(cfg, "train.image_size"), _seed(cfg))


def paired(cfg: dict[str, Any], train: bool = True) -> data.PairedDataset:
    """Photo and anime folders matched by file name."""
    return data.PairedDataset(get(cfg, "data.photo"), get(cfg, "data.anime"), get(cfg, "train.image_size"), _seed(cfg))


def noise(cfg: dict[str, Any], train: bool = True) -> data.NoiseDataset:
    """Latent vectors z of ``generator.latent_dim``, reproducible per index."""
    return data.NoiseDataset(int(get(cfg, "data.size", 10_000)), int(get(cfg, "generator.latent_dim", 100)), _seed(cfg))
