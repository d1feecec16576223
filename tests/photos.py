"""Real photos for tests (``ANIME_TEST_PHOTOS``, default ``../shared/photos`` beside the checkout); a shipped network,
random weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

_BESIDE = [p / "shared" / "photos" for p in Path(__file__).resolve().parents]  # ../shared beside the checkout
PHOTOS = Path(os.environ.get("ANIME_TEST_PHOTOS", next((p for p in _BESIDE if p.is_dir()), _BESIDE[1])))
SIDE = 96  # px: the photos are shrunk first, so a 2-core CPU runs AnimeGAN v2 on them in about a second


def real_photos(n: int = 2, side: int = SIDE) -> list[Image.Image]:
    """The first ``n`` real photos, RGB, long side ``side`` px (Lanczos); the test is skipped without them."""
    from anime_core.inference import io

    found = sorted(PHOTOS.glob("*.jpg"))[:n]
    if len(found) < n:
        pytest.skip(f"needs {n} real photos in {PHOTOS} (set ANIME_TEST_PHOTOS)")
    photos = []
    for path in found:
        with Image.open(path) as im:
            photos.append(io.resize_long_side(im.convert("RGB"), side))
    return photos


def animegan_weights(path: Path, seed: int = 0) -> Path:
    """A native weights file of AnimeGAN v2 (a shipped architecture) with random weights, as ``anime train`` writes."""
    import torch

    import anime_core
    from anime_core.weights.files import save_native

    torch.manual_seed(seed)
    generator = anime_core.build("animegan", "generator", variant="v2")
    return save_native(path, {"generator": generator}, "animegan", generator={"variant": "v2"})
