"""``anime run dcgan`` / ``pixelsake-sr`` behaviour through anime_core.load and native weights files."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_dcgan.generator import DCGANGenerator
from anime_plugin_dcgan.pipeline import SRPipeline, truncated_normal
from anime_plugin_dcgan.sr import SRGenerator
from PIL import Image

import anime_core
from anime_core.errors import UsageError
from anime_core.inference.modes import RunRequest
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import run_pipeline
from anime_core.weights.files import save_native

OPTS = {"image_size": 32, "width": 8, "num_classes": 2, "class_names": ["green", "orange"]}


@pytest.fixture
def cond_weights(tmp_path):
    torch.manual_seed(0)
    g = DCGANGenerator(**OPTS)
    with torch.no_grad():  # make BN running stats non-trivial so eval differs from init
        g.train()(torch.randn(8, 100), torch.tensor([0, 1] * 4))
    return save_native(tmp_path / "g.safetensors", {"generator": g}, "dcgan", OPTS)


def test_same_seed_same_grid(cond_weights, tmp_path):
    pipe = anime_core.load("dcgan", weights=cond_weights, device="cpu")
    a, b, c = pipe.generate(4, seed=3), pipe.generate(4, seed=3), pipe.generate(4, seed=4)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert a[0].tobytes() != c[0].tobytes()
    assert a[0].size == (32, 32)
    out1, out2 = tmp_path / "g1.png", tmp_path / "g2.png"
    run_pipeline(pipe, RunRequest(num=4, seed=7), FileOptions(output=out1))
    run_pipeline(pipe, RunRequest(num=4, seed=7), FileOptions(output=out2))
    assert Image.open(out1).tobytes() == Image.open(out2).tobytes()
    assert Image.open(out1).size == (2 + 2 * 34, 2 + 2 * 34)  # 2x2 grid, padding 2


def test_class_option_selects_label(cond_weights):
    green = anime_core.load("dcgan", weights=cond_weights, device="cpu", class_name="green")
    orange = anime_core.load("dcgan", weights=cond_weights, device="cpu", class_name="orange")
    z = green.latents(2, 0)
    assert not torch.allclose(green.decode_latents(z), orange.decode_latents(z))
    g = green.generator
    torch.testing.assert_close(green.decode_latents(z), ((g(z, torch.zeros(2, dtype=torch.long)) + 1) / 2).clamp(0, 1))
    with pytest.raises(UsageError, match="green, orange"):
        anime_core.load("dcgan", weights=cond_weights, device="cpu", class_name="blue").generate(1)


def test_class_option_needs_conditional_weights(tmp_path):
    path = save_native(tmp_path / "u.safetensors", {"generator": DCGANGenerator(image_size=32, width=8)}, "dcgan",
                       {"image_size": 32, "width": 8})
    with pytest.raises(UsageError, match="class-conditional"):
        anime_core.load("dcgan", weights=path, device="cpu", class_name="x").generate(1)


def test_truncation_bounds_latents_and_is_seeded():
    z = truncated_normal((64, 100), 0.5, torch.Generator().manual_seed(0))
    assert float(z.abs().max()) <= 0.5
    assert float(z.std()) < 0.35  # a normal truncated at 0.5 has std ~0.28; untruncated would be 1
    torch.testing.assert_close(z, truncated_normal((64, 100), 0.5, torch.Generator().manual_seed(0)))


def test_interpolate_writes_walk_between_two_seeds(cond_weights, tmp_path):
    pipe = anime_core.load("dcgan", weights=cond_weights, device="cpu", interpolate=5, class_name="orange")
    walk = pipe.walk(5, seed=2)
    torch.testing.assert_close(walk[0], pipe.latents(1, 2)[0])
    torch.testing.assert_close(walk[-1], pipe.latents(1, 3)[0])
    out = tmp_path / "walk.png"
    report = run_pipeline(pipe, RunRequest(seed=2), FileOptions(output=out))
    assert report.written == [out]
    assert Image.open(out).size == (2 + 5 * 34, 2 + 34)  # one strip of 5


def test_sr_pipeline_outputs_4x(tmp_path):
    g = SRGenerator(width=8, num_blocks=1)
    path = save_native(tmp_path / "sr.safetensors", {"generator": g}, "pixelsake-sr", {"width": 8, "num_blocks": 1})
    pipe = anime_core.load("pixelsake-sr", weights=path, device="cpu")
    assert isinstance(pipe, SRPipeline) and pipe.out_scale == 4
    src = Image.new("RGB", (10, 7), (200, 30, 30))
    out = pipe(src)
    assert out.size == (40, 28)
    assert abs(out.getpixel((20, 14))[0] - 200) <= 2  # flat colour stays flat (bicubic start)
