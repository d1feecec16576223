"""The core's dataset kinds (``images``, ``unpaired``, ``paired``, ``noise``): typed run config -> Dataset.

Registered by :mod:`anime_core.builtin` as references, so listing them imports nothing heavy.
Each reads the keys it needs from the run config; a key the model's schema does not declare is
an ``AttributeError`` (``noise`` needs ``data.size``, which no core section has).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anime_core.config import net_options
from anime_core.training import data

if TYPE_CHECKING:
    from anime_core.schema import RunConfig


def images(cfg: RunConfig, train: bool = True, labels: bool = False) -> data.ImageFolderDataset:
    """One folder of images (``data.anime``, else ``data.photo``); class sub-folders as labels with ``labels``
    (dcgan passes its ``data.conditional``)."""
    root = cfg.data.anime or cfg.data.photo
    return data.ImageFolderDataset(root, cfg.train.image_size, cfg.train.seed, labels=labels)


def unpaired(cfg: RunConfig, train: bool = True) -> data.UnpairedDataset:
    """Photo and anime folders without correspondence."""
    return data.UnpairedDataset(cfg.data.photo, cfg.data.anime, cfg.train.image_size, cfg.train.seed)


def paired(cfg: RunConfig, train: bool = True) -> data.PairedDataset:
    """Photo and anime folders matched by file name."""
    return data.PairedDataset(cfg.data.photo, cfg.data.anime, cfg.train.image_size, cfg.train.seed)


def noise(cfg: Any, train: bool = True) -> data.NoiseDataset:
    """Latent vectors z of ``generator.latent_dim``, reproducible per index; ``data.size`` of them."""
    return data.NoiseDataset(cfg.data.size, int(net_options(cfg, "generator")["latent_dim"]), cfg.train.seed)
