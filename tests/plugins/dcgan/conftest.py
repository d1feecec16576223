"""Fixtures of the dcgan plugin tests: generated "faces" (coloured discs on flat backgrounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

BACKGROUND = (30, 60, 200)  # blue
DISC = (230, 120, 40)  # orange


def disc_image(size: int, rng: np.random.Generator, background=BACKGROUND, disc=DISC) -> Image.Image:
    """A flat background with one disc of random position and radius; colours jitter a little."""
    jitter = rng.integers(-10, 11, 3)
    img = Image.new("RGB", (size, size), tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(background, jitter)))
    r = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(r, size - r, 2)
    ImageDraw.Draw(img).ellipse([cx - r, cy - r, cx + r, cy + r], fill=disc)
    return img


def write_discs(folder: Path, n: int, size: int, seed: int = 0, **colours) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        disc_image(size, rng, **colours).save(folder / f"face{i:03d}.png")
    return folder


@pytest.fixture
def faces(tmp_path) -> Path:
    """32 disc images of 32 px."""
    return write_discs(tmp_path / "faces", 32, 32)


@pytest.fixture
def class_faces(tmp_path) -> Path:
    """Two classes (sub-folders) that differ in disc colour."""
    root = tmp_path / "classes"
    write_discs(root / "orange", 8, 32, seed=1)
    write_discs(root / "green", 8, 32, seed=2, disc=(40, 200, 60))
    return root


@pytest.fixture
def sr_faces(tmp_path) -> Path:
    """16 disc images of 32 px for the enhancer (4 held out)."""
    return write_discs(tmp_path / "sr", 16, 32, seed=5)
