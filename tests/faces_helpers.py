"""Portrait-mode test helpers: the shared RetinaFace file, real faces, and two exact test models.

``faceid`` (translate) is a 1x1 convolution whose weights make it the identity (``invert=False``)
or the colour inversion ``1 - x`` (``invert=True``: -x in the generators' [-1, 1] range), exactly in
float32; it is registered through the real hooks as a plugin module (this one), and its weights go
through native safetensors like any trained model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from anime_core import hookimpl
from anime_core.specs import FFHQ_512, GeneratorSpec, ModelSpec, StyleSpec, WeightsSource

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
SHARED_MODELS = next((p for p in (MODELS, Path("/work/shared/models")) if p.is_dir()), MODELS)
RETINAFACE = SHARED_MODELS / "retinaface_mnet025.onnx"
PHOTOS = SHARED_MODELS.parent / "photos"
needs_detector = pytest.mark.skipif(
    not RETINAFACE.is_file(), reason=f"the RetinaFace test copy {RETINAFACE} is absent (../shared/models)"
)


class ColourMap:
    """Marker base; the net itself is built in :func:`build_colour_map` (torch is imported there)."""


def build_colour_map(invert: bool = False) -> Any:
    import torch
    from torch import nn

    net = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * (-1.0 if invert else 1.0))
        net.bias.zero_()
    net.stride = 1
    return net


@hookimpl
def anime_register_generators():  # type: ignore[no-untyped-def]
    return [GeneratorSpec("faceid", f"{__name__}:build_colour_map", "identity or colour inversion (tests)")]


@hookimpl
def anime_register_models():  # type: ignore[no-untyped-def]
    return [ModelSpec("faceid", "translate", generator="faceid", description="exact test model for --faces")]


@hookimpl
def anime_register_styles():  # type: ignore[no-untyped-def]
    # a face style (never downloaded in the tests): shows a style naming its template
    return [StyleSpec("faceid", "portrait", WeightsSource("https://example.invalid/p.safetensors", sha256="0" * 64),
                      preprocess={"size": 512, "center_crop": True}, face=FFHQ_512)]


def registry_with_test_models() -> Any:
    import faces_helpers

    from anime_core.registry import load_registry

    return load_registry(extra=[("faces-test", faces_helpers)], strict=True)


def save_colour_map(path: Path, invert: bool) -> Path:
    from anime_core.weights.files import save_native

    return save_native(path, {"generator": build_colour_map(invert)}, "faceid", {"invert": invert})


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins, NASA, public domain): one frontal face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


#: where the astronaut's face is (x0, y0, x1, y1): forehead to chin, ear to ear, by eye on the 512 px photo
ASTRONAUT_FACE = (180, 70, 265, 175)


def group_photo(n: int = 4, side: int = 256) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """``n`` astronaut heads, each at a different scale, side by side on a grey canvas; their boxes in it."""
    face = Image.fromarray(astronaut()).crop((120, 10, 330, 250))  # head and shoulders
    canvas = Image.new("RGB", (side * n, side + 64), (128, 128, 128))
    boxes = []
    for i in range(n):
        scale = (0.55 + 0.15 * i) * side / face.width
        head = face.resize((round(face.width * scale), round(face.height * scale)), Image.Resampling.LANCZOS)
        x, y = i * side + (side - head.width) // 2, 16
        canvas.paste(head, (x, y))
        fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
        boxes.append((round(x + (fx0 - 120) * scale), round(y + (fy0 - 10) * scale),
                      round(x + (fx1 - 120) * scale), round(y + (fy1 - 10) * scale)))
    return np.asarray(canvas), boxes
