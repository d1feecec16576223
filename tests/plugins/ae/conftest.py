"""Fixtures of the ae plugin tests, and generated pairs: gray photos and a fixed re-colouring of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from anime_plugin_ae.color import lab_to_rgb, rgb_to_lab
from PIL import Image, ImageDraw


def gray_photo(seed: int, size: int = 32) -> Image.Image:
    """A gray photo: a gradient in a random direction and two soft-edged blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    v = 0.5 + 0.7 * (np.cos(angle) * xx + np.sin(angle) * yy)
    img = Image.fromarray((v.clip(0, 1) * 255).astype(np.uint8), "L")
    draw = ImageDraw.Draw(img)
    for _ in range(2):
        x0, y0 = rng.integers(0, size - 8, 2)
        r = int(rng.integers(4, 12))
        draw.ellipse([int(x0), int(y0), int(x0) + r, int(y0) + r], fill=int(rng.integers(0, 255)))
    return img.convert("RGB")


def recolour(photo: Image.Image) -> Image.Image:
    """The fixed colour map: keep L*, set a* = 1.2 (L* - 50), b* = -1.2 (L* - 50) (dark blue-green to pink)."""
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255
    light = rgb_to_lab(x)[:, :1]
    lab = torch.cat([light, 1.2 * (light - 50), -1.2 * (light - 50)], dim=1)
    y = lab_to_rgb(lab)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    return Image.fromarray(y, "RGB")


def write_pairs(root: Path, n: int, size: int = 32) -> tuple[Path, Path]:
    photo, anime = root / "photo", root / "anime"
    photo.mkdir(parents=True, exist_ok=True)
    anime.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = gray_photo(i, size)
        img.save(photo / f"{i:03d}.png")
        recolour(img).save(anime / f"{i:03d}.png")
    return photo, anime


@pytest.fixture
def make_pairs():
    """``make_pairs(root, n, size)`` writes n photo/anime pairs and returns the two folders."""
    return write_pairs
