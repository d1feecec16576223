"""The ``animegan`` dataset kind: ``{"photo", "anime", "anime_gray", "anime_smooth_gray"}``, the four
image sets of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.2.

``photo`` is p from S_data(p); ``anime`` is a from S_data(a); ``anime_gray`` its grayscale copy x
(S_data(x)) and ``anime_smooth_gray`` its edge-smoothed grayscale copy y (S_data(y)), read from the
cache :mod:`.prepare` writes (prepared automatically, once, when missing or stale). The three
anime views of one frame share one crop and flip. Each photo meets a random anime frame. Images
are (3, H, W) in [-1, 1]; the grayscale ones repeat their single channel, as in the official code.

With ``data.edge_images: color`` (section 4.2, Fig. 5 "B": the edge-promoting loss on the colour
edge-blurred images S_data(e) instead of their grayscale copies) the item holds ``anime_smooth``,
the colour edge-smoothed frame, in place of ``anime_smooth_gray``; those copies are cached in
``smooth_color/`` of the prepared folder, made by the same edge smoothing as the grayscale ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from anime_core.errors import ConfigError
from anime_core.fsutil import atomic_path
from anime_core.training.data import UNREADABLE, SeededDataset, list_images, load_rgb, readable, train_transform
from anime_plugin_animegan.prepare import edge_smooth, prepare, prepared_dir, targets

if TYPE_CHECKING:
    from anime_plugin_animegan.config import AnimeGANConfig

SMOOTH_COLOR = "smooth_color"
#: the batch key of the edge-promoting loss's images, by ``data.edge_images``
SMOOTH_KEYS = {"gray": "anime_smooth_gray", "color": "anime_smooth"}


class AnimeGANDataset(SeededDataset):
    """Unpaired photos and anime frames with the frames' prepared gray and smooth-gray copies."""

    def __init__(self, photo: str | Path, anime: str | Path, prepared: str | Path, image_size: int,
                 seed: int = 0, flip: bool = True, edge_images: str = "gray") -> None:
        super().__init__(seed)
        anime_dir, root = Path(anime).expanduser(), Path(prepared)
        self.photos = readable(list_images(photo, "photo folder (data.photo)"), "photos")
        self.smooth_key = SMOOTH_KEYS[edge_images]
        self.anime: list[tuple[Path, Path, Path]] = []
        for src in list_images(anime_dir, "anime folder (data.anime)"):
            gray, smooth = targets(root, anime_dir, src)
            if edge_images == "color":
                smooth = color_target(root, anime_dir, src)
            if gray.is_file() and smooth.is_file():
                self.anime.append((src, gray, smooth))
        if not self.anime:
            raise ConfigError(f"no prepared anime frames in {root}; run 'anime prepare animegan --anime {anime_dir}'")
        self.transform = train_transform(image_size, flip)

    def __len__(self) -> int:
        return len(self.photos)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        j = int(torch.randint(len(self.anime), ()).item())
        src, gray, smooth = self.anime[j]
        photo = self.transform(load_rgb(self.photos[index]))
        a, g, s = load_rgb(src), load_rgb(gray), load_rgb(smooth)
        if g.size != a.size or s.size != a.size:
            g, s = g.resize(a.size, Image.Resampling.BICUBIC), s.resize(a.size, Image.Resampling.BICUBIC)
        anime, anime_gray, anime_smooth = self.transform(a, g, s)  # one crop and flip for the three views
        return {"photo": photo, "anime": anime, "anime_gray": anime_gray, self.smooth_key: anime_smooth}


def color_target(root: Path, anime_dir: Path, src: Path) -> Path:
    """Where the colour edge-smoothed copy of ``src`` is cached (``data.edge_images: color``)."""
    return root / SMOOTH_COLOR / src.relative_to(anime_dir).with_suffix(".png")


def prepare_color(config: AnimeGANConfig) -> int:
    """Write the colour edge-smoothed copies that are missing or older than their frame; returns how many."""
    anime_dir, root = Path(config.data.anime).expanduser(), prepared_dir(config)
    written = 0
    for src in list_images(anime_dir, "anime folder (data.anime)"):
        out = color_target(root, anime_dir, src)
        if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        try:
            rgb = np.asarray(load_rgb(src))
        except UNREADABLE:
            continue  # prepare() has named it already
        with atomic_path(out) as tmp:
            Image.fromarray(edge_smooth(rgb)).save(tmp, format="PNG")
        written += 1
    return written


def build_dataset(config: AnimeGANConfig, train: bool = True) -> AnimeGANDataset:
    """DatasetSpec builder: prepares the anime folder's gray/smooth copies when needed, then loads."""
    prepare(config)  # idempotent: only new or changed frames are processed; unreadable ones are named
    data = config.data
    if data.edge_images == "color":
        prepare_color(config)
    return AnimeGANDataset(
        data.photo,
        data.anime,
        prepared_dir(config),
        config.train.image_size,
        seed=config.train.seed,
        flip=data.flip,
        edge_images=data.edge_images,
    )
