"""Test helpers: generated images (gradients, shapes, structured noise) and subprocess env."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


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


def write_images(
    folder: Path, n: int, size: tuple[int, int] = (24, 24), seed: int = 0, ext: str = ".png"
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:03d}{ext}"
        make_image(size, seed * 1000 + i).save(p)
        paths.append(p)
    return paths


def subprocess_env(site: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(site)] if site else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def liven(gen: Any) -> Any:  # torch stays out of this module's imports
    """Random weights everywhere in ``gen``, including layers a fresh net starts at zero (attention gamma, SR tail)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    for name, p in gen.named_parameters():
        if not p.any():
            nn.init.normal_(p, 0.0, 0.5 if name.endswith("gamma") else 0.02)
    return gen
