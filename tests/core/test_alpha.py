"""Transparency survives translation: the colour is translated and the input's alpha put back (issue 24 item 8).

A real photo (``ANIME_TEST_PHOTOS``) given a made alpha channel, through AnimeGAN v2 (random
weights) by ``anime run`` and by the Python API; animated GIF and APNG with transparency.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import subprocess_env
from photos import animegan_weights, real_photos
from PIL import Image

import anime_core
from anime_core.inference import io


@pytest.fixture(scope="module")
def animegan(tmp_path_factory):
    from anime_core.registry import load_registry, set_registry

    set_registry(load_registry())
    path = animegan_weights(tmp_path_factory.mktemp("w") / "animegan.safetensors")
    yield anime_core.load("animegan", weights=path, device="cpu")
    set_registry(None)


def made_alpha(photo: Image.Image) -> np.ndarray:
    """An alpha channel with every value: a radial ramp, fully transparent corners, an opaque centre."""
    w, h = photo.size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    return np.clip((1.3 - r) * 400, 0, 255).astype(np.uint8)


def rgba_photo(side: int = 96) -> Image.Image:
    photo = real_photos(1, side)[0]
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(made_alpha(photo), "L"))
    return rgba


def test_the_api_keeps_alpha_exactly_for_every_kind(animegan, tmp_path):
    rgba = rgba_photo()
    alpha = np.asarray(rgba)[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any() and ((alpha > 0) & (alpha < 255)).any()
    out = animegan(rgba)
    assert out.mode == "RGBA" and out.size == rgba.size
    assert np.array_equal(np.asarray(out)[..., 3], alpha)
    # the colour is the model's: not the photo's, and where the photo shows, as its RGB version gives
    opaque = alpha == 255
    flat = np.asarray(animegan(rgba.convert("RGB")))
    assert np.abs(np.asarray(out)[..., :3][opaque].astype(int) - np.asarray(rgba)[..., :3][opaque]).mean() > 10
    assert np.abs(np.asarray(out)[..., :3][opaque].astype(int) - flat[opaque]).mean() < 8
    path = tmp_path / "photo.png"
    rgba.save(path)
    assert np.array_equal(np.asarray(animegan(path)), np.asarray(out))
    arr = np.asarray(rgba)
    assert np.array_equal(animegan(arr), np.asarray(out))
    as_float = animegan(arr / 255)
    assert as_float.shape == arr.shape and np.array_equal(as_float[..., 3], arr[..., 3] / 255)
    chw = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    assert np.array_equal(animegan(chw).permute(1, 2, 0).numpy(), np.asarray(out))
    la = rgba.convert("LA")
    assert np.array_equal(np.asarray(animegan(la))[..., 3], np.asarray(la)[..., 1])
    assert animegan(rgba.convert("RGB")).mode == "RGB"  # no alpha given, none made up


def test_a_resize_resizes_the_alpha_with_the_colour(animegan):
    rgba = rgba_photo(160)
    out = animegan(rgba, size=64)
    expected = io.resize_long_side(rgba, 64).getchannel("A")  # the colour's own Lanczos resize
    assert out.mode == "RGBA" and out.size == expected.size
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(expected))
    arr = animegan(np.asarray(rgba), size=64)
    assert np.array_equal(arr, np.asarray(out))


def test_a_palette_image_with_a_transparent_colour_keeps_it(animegan):
    photo = real_photos(1)[0].quantize(64)
    photo.info["transparency"] = 0
    out = animegan(photo)
    hidden = np.asarray(photo) == 0
    assert out.mode == "RGBA" and hidden.any()
    assert np.array_equal(np.asarray(out)[..., 3] == 0, hidden)


@pytest.mark.slow  # one `anime run` subprocess over a still, a GIF and an APNG: ~15 s on a loaded 2-core machine
def test_anime_run_keeps_alpha_of_stills_and_animations(tmp_path):
    weights = animegan_weights(tmp_path / "w.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    rgba = rgba_photo(80)
    rgba.save(src / "photo.png")
    alpha = np.asarray(rgba)[..., 3]
    # an animated GIF: a transparent hole that moves; an APNG: the full alpha ramp, shifted per frame
    base = real_photos(2, 64)
    gif_frames, png_frames = [], []
    for i, photo in enumerate(base):
        frame = photo.convert("RGBA")
        hole = np.full(photo.size[::-1], 255, np.uint8)
        hole[10:30, 5 + 15 * i:25 + 15 * i] = 0
        frame.putalpha(Image.fromarray(hole, "L"))
        gif_frames.append(frame)
        ramp = frame.copy()
        ramp.putalpha(Image.fromarray(np.roll(made_alpha(photo), 7 * i, axis=1), "L"))
        png_frames.append(ramp)
    gif_frames[0].save(src / "anim.gif", save_all=True, append_images=gif_frames[1:], duration=120, loop=0,
                       disposal=2)
    png_frames[0].save(src / "anim.png", save_all=True, append_images=png_frames[1:], duration=120, loop=0)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "anime_core.cli", "run", "animegan", "--weights", str(weights),
                             str(src), "-o", str(out), "--device", "cpu", "-q"],
                            capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    with Image.open(out / "photo.png") as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], alpha)
        assert np.abs(np.asarray(im)[..., :3].astype(int) - np.asarray(rgba)[..., :3]).mean() > 10  # translated
    for name, frames, exact in (("anim.gif", gif_frames, False), ("anim.png", png_frames, True)):
        with Image.open(out / name) as im, Image.open(src / name) as given:
            assert im.n_frames == len(frames)
            for i in range(im.n_frames):
                im.seek(i)
                given.seek(i)
                got, want = np.asarray(im.convert("RGBA"))[..., 3], np.asarray(given.convert("RGBA"))[..., 3]
                if exact:  # APNG: every alpha value
                    assert np.array_equal(got, want), (name, i)
                else:  # GIF: one transparent palette entry, so the transparent pixels
                    assert np.array_equal(got == 0, want == 0) and (want == 0).any(), (name, i)
    jpg = subprocess.run([sys.executable, "-m", "anime_core.cli", "run", "animegan", "--weights", str(weights),
                          str(src / "photo.png"), "-o", str(tmp_path / "flat.jpg"), "--device", "cpu", "-q"],
                         capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert jpg.returncode == 0, jpg.stderr  # JPEG has no alpha: flattened over white, not an error
    assert Image.open(tmp_path / "flat.jpg").mode == "RGB"
