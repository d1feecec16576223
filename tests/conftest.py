"""Shared fixtures: generated images, the tiny test plugin, an isolated weights cache."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

TESTS = Path(__file__).parent
TINY_SRC = TESTS / "tiny_plugin"
REPO = TESTS.parent

if str(TINY_SRC) not in sys.path:
    sys.path.insert(0, str(TINY_SRC))


def make_image(size: tuple[int, int], seed: int) -> Image.Image:
    """A structured test image: a colour gradient, random shapes and a little noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), (xx + yy) / max(w + h - 2, 1)], -1)
    base = (base * rng.uniform(0.3, 1.0, 3) * 255).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.integers(0, max(w - 2, 1)), rng.integers(0, max(h - 2, 1))
        x1, y1 = x0 + rng.integers(2, max(w // 2, 3)), y0 + rng.integers(2, max(h // 2, 3))
        draw.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (h, w, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def write_images(folder: Path, n: int, size: tuple[int, int] = (24, 24), seed: int = 0, ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:03d}{ext}"
        make_image(size, seed * 1000 + i).save(p)
        paths.append(p)
    return paths


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty weights cache and never hits the network."""
    home = tmp_path_factory.mktemp("anime_home")
    monkeypatch.setenv("ANIME_HOME", str(home))
    monkeypatch.setenv("ANIME_OFFLINE", "1")
    yield home


@pytest.fixture
def tiny_registry():
    """The process registry with only the core and the tiny test plugin."""
    import tiny_anime_plugin

    from anime_core.registry import load_registry, set_registry

    reg = load_registry(extra=[("tiny", tiny_anime_plugin)], entry_points=False, strict=True)
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    """A site folder where the tiny plugin is *installed*: package + dist-info with a real entry point."""
    site = tmp_path / "site"
    shutil.copytree(TINY_SRC / "tiny_anime_plugin", site / "tiny_anime_plugin")
    info = site / "tiny_anime_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-anime-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[anime.plugins]\ntiny = tiny_anime_plugin\n")
    return site


def subprocess_env(site: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(site)] if site else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env
