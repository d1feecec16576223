"""--keep-colors and --strength (issue 24, "What users ask for"): on real photos, shipped architectures.

The photos are the project's shared ones (``../shared/photos`` beside the checkout, or
``$ANIME_TEST_PHOTOS``); the tests skip, saying so, where there are none. Generators are the
shipped AnimeGAN v2 / v1 and PixelSake SR with random weights (seeded): the controls' promises hold
for any output, and trained styles cannot be downloaded here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import subprocess_env
from photos import PHOTOS as PHOTO_DIR
from PIL import Image

import anime_core
from anime_core import color
from anime_core.errors import UsageError
from anime_core.inference import controls, io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.registry import get_registry

ROOT = Path(__file__).resolve().parents[2]
#: the mean a*b* distance (CIE76, Lab units) --keep-colors may leave between output and photo: gamut
#: clipping and 8-bit rounding only. Measured 0.25 (worst photo 0.28) over the 8 photos at 256 px;
#: a just-noticeable difference is about 2.3, the full style's own is 25.6 (benchmarks/RESULTS.md)
CHROMA_TOLERANCE = 1.0
SIZE = 160  # long side of the photos in these tests (small: 2 shared cores)


PHOTOS = sorted(PHOTO_DIR.glob("*.jpg"))
needs_photos = pytest.mark.skipif(not PHOTOS, reason=f"no shared photos in {PHOTO_DIR} (set ANIME_TEST_PHOTOS)")


def _pipe(model: str = "animegan", variant: str | None = "v2", **options) -> TranslatePipeline:
    torch.manual_seed(0)
    spec = get_registry().model(model)
    gen = anime_core.build(model, **({"variant": variant} if variant else {}))
    return TranslatePipeline(spec, {"generator": gen}, device="cpu", **options)


def _photo(i: int = 0, size: int = SIZE) -> Image.Image:
    return io.resize_long_side(io.decode(PHOTOS[i]), size)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, np.int16)


def _lab(img: Image.Image) -> torch.Tensor:
    return color.rgb_to_lab(io.to_tensor(img).unsqueeze(0).float() / 255)


def test_lab_matches_scikit_image_formulas():
    # skimage.color.rgb2lab of pure red, green, blue, white and a mid grey (published values, D65)
    rgb = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.5, 0.5, 0.5]]).T.reshape(1, 3, 5, 1)
    lab = color.rgb_to_lab(rgb)[0, :, :, 0].T
    want = torch.tensor([[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86],
                         [100.0, 0.0, 0.0], [53.39, 0.0, 0.0]])
    assert (lab - want).abs().max() < 0.02
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert (color.lab_to_rgb(color.rgb_to_lab(x)) - x).abs().max() < 1e-4


@needs_photos
@pytest.mark.parametrize("variant", ["v2", "v1"])
def test_strength_zero_returns_the_photo(variant):
    img = _photo(1)
    out = _pipe(variant=variant, strength=0.0)(img)
    assert out.size == img.size
    assert np.abs(_arr(out) - _arr(img)).max() <= 1  # within 1/255 (in fact exact)
    assert np.abs(_arr(_pipe(variant=variant)(img)) - _arr(img)).mean() > 20  # the style does change it


@needs_photos
def test_strength_steps_are_monotone_and_visible():
    img = _photo(2)
    base = _pipe()
    lab_x = _lab(img)
    dist = []
    for s in (0.0, 0.25, 0.5, 0.75, 1.0):
        out = base.with_controls(strength=s)(img)
        dist.append(float((_lab(out) - lab_x).norm(dim=1).mean()))
    assert dist[0] < 0.5
    steps = np.diff(dist)
    assert (steps > 3).all(), dist  # each quarter moves the mean colour by more than a visible 3 CIE76 units
    assert steps.max() / steps.min() < 1.5, dist  # and about evenly
    full = base(img)
    assert np.array_equal(_arr(base.with_controls(strength=1.0)(img)), _arr(full))  # 1 is the model's output


@needs_photos
@pytest.mark.parametrize("i", range(3))
def test_keep_colors_keeps_the_photos_chroma_and_the_styles_lightness(i):
    img = _photo(i)
    pipe = _pipe()
    styled, kept = pipe(img), pipe.with_controls(keep_colors=True)(img)
    lab_x, lab_s, lab_k = _lab(img), _lab(styled), _lab(kept)
    chroma = float((lab_k[:, 1:] - lab_x[:, 1:]).norm(dim=1).mean())
    assert chroma < CHROMA_TOLERANCE, chroma
    assert float((lab_s[:, 1:] - lab_x[:, 1:]).norm(dim=1).mean()) > 10  # the style alone does not keep them
    assert float((lab_k[:, 0] - lab_s[:, 0]).abs().mean()) < 1.0  # the style's lightness (its lines and shading)
    both = pipe.with_controls(keep_colors=True, strength=0.0)(img)
    assert np.abs(_arr(both) - _arr(img)).max() <= 1  # strength 0 still returns the photo


@needs_photos
def test_batches_tiles_and_video_frames_get_the_same_controls():
    from anime_core.runner.options import FileOptions
    from anime_core.runner.videos import frame_fn

    a, b = _photo(0, 128), _photo(3, 128).resize(_photo(0, 128).size)
    pipe = _pipe(keep_colors=True, strength=0.6)
    one = [_arr(pipe(img)) for img in (a, b)]
    batch = pipe.forward(torch.stack([io.to_tensor(a), io.to_tensor(b)]))
    for got, want in zip(batch, one):
        assert np.abs(_arr(io.to_image(got)) - want).max() <= 1
    x = io.to_tensor(a)
    raw = _pipe().translate(x, tile=64)  # faithful tiles run without the controls; they apply once, to the whole
    want = pipe.controls.apply(raw.unsqueeze(0), x.unsqueeze(0).float() / 255)[0]
    assert (pipe.translate(x, tile=64) - want).abs().max() < 1e-5
    assert pipe.last_tiling is not None and pipe.last_tiling.tiles > 1
    frames = [np.asarray(a), np.asarray(b)]  # the video/animation path of anime run
    fn = frame_fn(_pipe(strength=0.0), FileOptions(), "clip.mp4", [])
    assert all(np.array_equal(got, want) for got, want in zip(fn(frames), frames))


@needs_photos
def test_super_resolution_compares_with_the_upscaled_photo():
    img = _photo(4, 64)
    spec = get_registry().model("pixelsake-sr")
    torch.manual_seed(0)
    cls = spec.pipeline_class() or TranslatePipeline
    pipe = cls(spec, {"generator": anime_core.build("pixelsake-sr")}, device="cpu", strength=0.0)
    out = pipe(img)
    assert out.width == img.width * pipe.out_scale
    up = controls.match_size(io.to_tensor(img).unsqueeze(0), torch.zeros(1, 3, out.height, out.width))
    assert np.abs(_arr(out) - _arr(io.to_image(up[0]))).max() <= 1


def test_broken_weights_are_refused_even_at_strength_zero():
    pipe = _pipe(strength=0.0)
    for p in pipe.generator.parameters():
        p.data.fill_(float("nan"))
    with pytest.raises(io.BadImage, match="not finite"):
        pipe(Image.new("RGB", (32, 32), (200, 30, 30)))


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "strong"])
def test_bad_strength_is_one_sentence(bad):
    with pytest.raises(UsageError, match=r"strength must be a number from 0 \(the photo\) to 1"):
        _pipe(strength=bad)
    with pytest.raises(UsageError, match="strength must be"):
        _pipe().with_controls(strength=bad)


def test_ae_keeps_its_own_strength():
    from anime_plugin_ae.pipeline import AEPipeline

    spec = get_registry().model("ae")
    assert controls.owned(spec) == {"strength"}
    torch.manual_seed(0)
    pipe = AEPipeline(spec, {"generator": anime_core.build("ae")}, device="cpu", strength=0.0)
    assert pipe.strength == 0.0 and pipe.controls == controls.Controls()  # the model's meaning, not the core's
    with pytest.raises(UsageError, match="ae has its own strength option"):
        pipe.with_controls(strength=0.5)
    assert pipe.with_controls(keep_colors=True).controls.keep_colors


def test_generate_models_take_no_controls():
    with pytest.raises(UsageError, match="takes no 'strength'"):
        anime_core.load("dcgan", weights="unused.safetensors", strength=0.5)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anime_core.cli", "run", *args], capture_output=True, text=True,
                          env=subprocess_env(), cwd=cwd, timeout=300)


@needs_photos
def test_cli_options(tmp_path):
    from anime_core.weights.files import save_native

    weights = tmp_path / "v2.safetensors"
    torch.manual_seed(0)
    save_native(weights, {"generator": anime_core.build("animegan", variant="v2")}, "animegan", {"variant": "v2"})
    photo = tmp_path / "photo.png"
    _photo(5, 96).save(photo)
    for value in ("1.5", "-1", "nan"):
        out = _run("animegan", str(photo), "-w", str(weights), "--strength", value, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert "Traceback" not in out.stderr and "strength" in last and last.count(". ") == 0, out.stderr
    out = _run("animegan", str(photo), "-w", str(weights), "--strength", "0", "--keep-colors", "-o",
               str(tmp_path / "same.png"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert np.abs(_arr(Image.open(tmp_path / "same.png")) - _arr(Image.open(photo))).max() <= 1
    out = _run("animegan", str(photo), "-w", str(weights), "--keep-colors", "-o", str(tmp_path / "kept.png"),
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    chroma = (_lab(Image.open(tmp_path / "kept.png"))[:, 1:] - _lab(Image.open(photo))[:, 1:]).norm(dim=1).mean()
    assert float(chroma) < CHROMA_TOLERANCE
    helps = _run("ae", "--help", cwd=tmp_path).stdout
    options = [line.split()[0] for line in helps.splitlines() if line.strip().startswith("--")]
    assert options.count("--strength") == 1 and "Chroma blend" in helps and "--keep-colors" in options
