"""The core's built-in plugin: standard losses and dataset kinds, through the same hooks as any plugin."""

from __future__ import annotations

from typing import Any

from anime_core import losses
from anime_core.config import get
from anime_core.hookspecs import hookimpl
from anime_core.specs import DatasetSpec, LossSpec
from anime_core.training import data


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("lsgan", losses.LSGANLoss, "least squares GAN loss (Mao et al. 2017)"),
        LossSpec("bce", losses.BCELoss, "BCE on logits; non-saturating generator term (Goodfellow 2014)"),
        LossSpec("hinge", losses.HingeLoss, "hinge GAN loss (Lim & Ye 2017)"),
        LossSpec("wgan", losses.WGANLoss, "Wasserstein critic loss; pair with gradient_penalty (WGAN-GP)"),
        LossSpec("l1", losses.L1Loss, "mean absolute error"),
        LossSpec("huber", losses.HuberLoss, "Huber / smooth L1 loss"),
        LossSpec("feature_matching", losses.FeatureMatchingLoss, "L1 between real and fake feature lists"),
    ]


def _seed(cfg: dict[str, Any]) -> int:
    return int(get(cfg, "train.seed", 0))


def _images(cfg: dict[str, Any], train: bool = True) -> data.ImageFolderDataset:
    root = get(cfg, "data.anime") or get(cfg, "data.photo")
    return data.ImageFolderDataset(
        root, get(cfg, "train.image_size", 64), _seed(cfg), labels=bool(get(cfg, "data.conditional", False))
    )


def _unpaired(cfg: dict[str, Any], train: bool = True) -> data.UnpairedDataset:
    return data.UnpairedDataset(
        get(cfg, "data.photo"), get(cfg, "data.anime"), get(cfg, "train.image_size"), _seed(cfg)
    )


def _paired(cfg: dict[str, Any], train: bool = True) -> data.PairedDataset:
    return data.PairedDataset(get(cfg, "data.photo"), get(cfg, "data.anime"), get(cfg, "train.image_size"), _seed(cfg))


def _noise(cfg: dict[str, Any], train: bool = True) -> data.NoiseDataset:
    return data.NoiseDataset(int(get(cfg, "data.size", 10_000)), int(get(cfg, "generator.latent_dim", 100)), _seed(cfg))


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("images", _images, "one folder of images (data.anime); class sub-folders if data.conditional"),
        DatasetSpec("unpaired", _unpaired, "photo and anime folders without correspondence (data.photo, data.anime)"),
        DatasetSpec("paired", _paired, "photo and anime folders with matching file names"),
        DatasetSpec("noise", _noise, "latent vectors z (generator.latent_dim), reproducible per index"),
    ]
