"""The ``animegan`` dataset kind: ``{"photo", "anime", "anime_gray", "anime_smooth_gray"}``, the four
image sets of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.2.

``photo`` is p from S_data(p); ``anime`` is a from S_data(a); ``anime_gray`` its grayscale copy x
(S_data(x)) and ``anime_smooth_gray`` its edge-smoothed grayscale copy y (S_data(y)), read from the
folder :mod:`.prepare` writes (prepared automatically, once per content of the anime folder, in a cache
under ``$ANIME_HOME/prepared``; the run records it as ``data.prepared_cache``). The three
anime views of one frame share one crop and flip. Each photo meets a random anime frame. Images
are (3, H, W) in [-1, 1]; the grayscale ones repeat their single channel, as in the official code.

With ``data.edge_images: color`` (section 4.2, Fig. 5 "B": the edge-promoting loss on the colour
edge-blurred images S_data(e) instead of their grayscale copies) the item holds ``anime_smooth``,
the colour edge-smoothed frame, in place of ``anime_smooth_gray``; those copies are kept in
``smooth_color/`` of the prepared folder, made by the same edge smoothing as the grayscale ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from anime_core.errors import ConfigError
from anime_core.files import list_images
from anime_core.training.data import SeededDataset, load_rgb, readable, train_transform
from anime_plugin_animegan.prepare import color_target, prepare, targets

if TYPE_CHECKING:
    from anime_plugin_animegan.config import AnimeGANConfig

#: the batch key of the edge-promoting loss's images, by ``data.edge_images``
SMOOTH_KEYS = {"gray": "anime_smooth_gray", "color": "anime_smooth"}


class AnimeGANDataset(SeededDataset):
    """Unpaired photos and anime frames with the frames' prepared gray and smooth-gray copies."""

    def __init__(self, photo: str | Path, anime: str | Path, prepared: str | Path, image_size: int,
                 seed: int = 0, flip: bool = True, edge_images: str = "gray") -> None:
        super().__init__(seed)
        anime_dir, root = Path(anime).expanduser(), Path(prepared)
        self.photos = readable(list_images(photo, "photo folder (data.photo)", ConfigError), "photos")
        self.smooth_key = SMOOTH_KEYS[edge_images]
        self.anime: list[tuple[Path, Path, Path]] = []
        for src in list_images(anime_dir, "anime folder (data.anime)", ConfigError):
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


def build_dataset(config: AnimeGANConfig, train: bool = True) -> AnimeGANDataset:
    """DatasetSpec builder: prepares the anime folder's gray/smooth copies when needed, then loads.

    The folder they are read from is recorded in ``config`` as ``data.prepared_cache`` (the run writes
    its ``config.yaml`` after the dataset is built).
    """
    report = prepare(config)  # once per content of the anime folder; unreadable frames are named
    if report.folder is not None:
        config.data.prepared_cache = str(report.folder)
    return AnimeGANDataset(
        config.data.photo,
        config.data.anime,
        report.folder,
        config.train.image_size,
        seed=config.train.seed,
        flip=config.data.flip,
        edge_images=config.data.edge_images,
    )
