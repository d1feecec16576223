"""Inference (paper Fig. 2, II.D, I.E/IV): Lab composition, --strength, VAE --interpolate, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anime_plugin_ae.color import compose, rgb_to_lab, rgb_to_lightness
from anime_plugin_ae.generator import build_generator
from helpers import make_image
from PIL import Image

import anime_core
from anime_core.errors import UsageError
from anime_core.inference.modes import RunRequest
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import run_pipeline
from anime_core.weights.files import save_native

OPTS = {"widths": [4, 8], "encoding_filters": 8, "latent_channels": 4}


@pytest.fixture
def weights(tmp_path):
    def write(variant: str = "lab"):
        torch.manual_seed(0)
        opts = {"variant": variant, **OPTS}
        return save_native(tmp_path / f"{variant}.safetensors", {"generator": build_generator(**opts)}, "ae", opts)

    return write


def photo_tensor(seed=3, size=(24, 16)):
    img = make_image(size, seed)
    return img, torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def test_strength_0_returns_the_photo_colours(registry, weights):
    img, _ = photo_tensor()
    out = anime_core.load("ae", weights=weights(), device="cpu", strength=0.0)(img)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(img, np.int16))
    assert out.size == img.size and diff.max() <= 1  # Lab round trip + 8-bit rounding


def test_strength_blends_chroma_and_keeps_the_photo_lightness(registry, weights):
    path = weights()
    x = 0.2 + 0.6 * photo_tensor()[1]  # mid-tones: the blended colours stay inside the sRGB gamut
    gen = anime_core.load("ae", weights=path, device="cpu").generator
    with torch.no_grad():
        full = compose(rgb_to_lightness(x), gen(rgb_to_lightness(x)))
    torch.testing.assert_close(anime_core.load("ae", weights=path, device="cpu").forward(x), full)
    half = rgb_to_lab(anime_core.load("ae", weights=path, device="cpu", strength=0.5).forward(x))
    photo, pred = rgb_to_lab(x), rgb_to_lab(full)
    torch.testing.assert_close(half[:, 0], photo[:, 0], atol=0.05, rtol=0)
    torch.testing.assert_close(half[:, 1:], (photo[:, 1:] + pred[:, 1:]) / 2, atol=0.3, rtol=0)
    with pytest.raises(UsageError, match="between 0 and 1"):
        anime_core.load("ae", weights=path, device="cpu", strength=1.5)


def test_rgb_variant_outputs_the_network_image(registry, weights):
    pipe = anime_core.load("ae", weights=weights("rgb"), device="cpu")
    _, x = photo_tensor()
    with torch.no_grad():
        expected = ((pipe.generator(x * 2 - 1) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(pipe.forward(x), expected)


def test_vae_interpolation_writes_a_latent_walk(registry, weights, tmp_path):
    path = weights("vae")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    make_image((24, 16), 1).save(a)
    make_image((30, 20), 2).save(b)  # resized to a's size
    pipe = anime_core.load("ae", weights=path, device="cpu", interpolate=(a, b), steps=5)
    report = run_pipeline(pipe, RunRequest(), FileOptions(output=tmp_path / "walk"))
    assert [p.name for p in report.written] == [f"frame-{i:03d}.png" for i in range(5)]
    frames = [np.asarray(Image.open(p), np.int16) for p in report.written]
    plain = anime_core.load("ae", weights=path, device="cpu")
    assert np.abs(frames[0] - np.asarray(plain(Image.open(a)), np.int16)).max() <= 1  # the walk starts at A
    assert any(np.abs(f - frames[0]).max() > 0 for f in frames[1:])
    strip = run_pipeline(pipe, RunRequest(), FileOptions(output=tmp_path / "walk.png")).written
    assert Image.open(strip[0]).size == (24 * 5, 16)
    assert np.array_equal(np.asarray(Image.open(strip[0]))[:, 24:48], np.asarray(Image.open(report.written[1])))
    with pytest.raises(UsageError, match="give no other inputs"):
        pipe.run_mode(RunRequest(inputs=(str(a),)))


def test_interpolation_needs_vae_weights(registry, weights, tmp_path):
    a = tmp_path / "a.png"
    make_image((16, 16), 1).save(a)
    pipe = anime_core.load("ae", weights=weights(), device="cpu", interpolate=(a, a))
    with pytest.raises(UsageError, match="VAE"):
        pipe.run_mode(RunRequest())


def test_cli_strength_option(registry, weights, tmp_path):
    from click.testing import CliRunner

    from anime_core.cli import cli

    path = weights()
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    make_image((24, 16), 5).save(src)
    res = CliRunner().invoke(cli, ["run", "ae", "--weights", str(path), "--strength", "0", "--device", "cpu",
                                   str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert np.abs(np.asarray(Image.open(out), np.int16) - np.asarray(Image.open(src), np.int16)).max() <= 1
