"""Tiled inference equals the untiled result for every registered translate generator (issue 18).

Each generator is built small with random weights (zero-initialised layers such as self-attention's
``gamma`` are given weight, so attention really mixes positions), images are gradients with shapes
and noise whose tones vary across the frame, and tiles cut through them several times per side.
What must hold, on the written 8-bit image: a mean difference of at most 1/255 and a 99.9th
percentile of at most 6/255.
"""

from __future__ import annotations

import pytest
import torch
from helpers import make_image
from torch import nn

from anime_core.inference import io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.tileplan import plan_tiles
from anime_core.inference.tiling import spans

MEAN_LIMIT, P999_LIMIT = 1.0, 6.0  # /255


def _liven(gen: nn.Module) -> nn.Module:
    """Random weights everywhere, including layers a fresh net starts at zero (attention gamma, SR tail)."""
    torch.manual_seed(0)
    for name, p in gen.named_parameters():
        if not p.any():
            nn.init.normal_(p, 0.0, 0.5 if name.endswith("gamma") else 0.02)
    return gen


def _pipeline(registry, model: str, gen: nn.Module) -> TranslatePipeline:
    spec = registry.model(model)
    cls = spec.pipeline_class() or TranslatePipeline
    return cls(spec, {"generator": _liven(gen)}, device="cpu")


def _compare(pipe: TranslatePipeline, size: tuple[int, int], tile: int, min_tiles: int = 3) -> None:
    """Tiled vs untiled on the 8-bit output, and proof that the tiles cut the image ``min_tiles`` times per side."""
    image = io.to_tensor(make_image(size, 7))
    full = pipe.translate(image, tile=0)
    tiled = pipe.translate(image, tile=tile)
    report = pipe.last_tiling
    assert report is not None and report.notes == [], report
    plan = pipe._tile_plan(size[1], size[0], tile)
    per_side = [len(spans(n, t, plan.halo, plan.align)) for n, t in zip(plan.padded, plan.tile)]
    assert min(per_side) >= min_tiles, per_side
    diff = ((tiled.clamp(0, 1) * 255).round() - (full.clamp(0, 1) * 255).round()).abs().flatten()
    p999 = float(diff.kthvalue(int(0.999 * diff.numel())).values)
    assert float(diff.mean()) <= MEAN_LIMIT and p999 <= P999_LIMIT, (float(diff.mean()), p999, report)


def test_animegan_v2_groupnorm(registry):
    """AnimeGANv2: GroupNorm(1) statistics over C, H, W, and align_corners resizes of the whole map."""
    _compare(_pipeline(registry, "animegan", registry.build("animegan", variant="v2")), (320, 256), 96)


@pytest.mark.slow  # ~9 s on a loaded 2-core CPU: per-channel statistics of random weights converge slowest
def test_animegan_v1_instance_norm(registry):
    """AnimeGAN v1 (one inverted residual block instead of eight, to stay fast): per-channel instance norm."""
    from anime_plugin_animegan.generator import GeneratorV1

    _compare(_pipeline(registry, "animegan", GeneratorV1(n_blocks=1)), (256, 192), 96)


@pytest.mark.parametrize("attention", ["none", "down", "up", pytest.param("both", marks=pytest.mark.slow)])
def test_cyclegan_unet(registry, attention):
    """The U-Net's receptive field spans the image: its low-resolution half is computed whole."""
    gen = registry.build("cyclegan", arch="unet", width=4, attention=attention)
    _compare(_pipeline(registry, "cyclegan", gen), (768, 768), 256)


@pytest.mark.parametrize("attention", ["none", "blocks"])
def test_cyclegan_resnet(registry, attention):
    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=1, attention=attention)
    _compare(_pipeline(registry, "cyclegan", gen), (320, 288), 96)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_cyclegan_pix2pix_unet(registry, norm):
    gen = registry.build("cyclegan", arch="pix2pix-unet", width=4, n_downs=8, norm=norm)
    _compare(_pipeline(registry, "cyclegan", gen), (768, 768), 256)


@pytest.mark.parametrize("variant", ["lab", "rgb", "skip", "vae"])
def test_ae(registry, variant):
    gen = registry.build("ae", variant=variant, widths=[8, 16, 32], encoding_filters=16, latent_channels=8)
    _compare(_pipeline(registry, "ae", gen), (256, 192), 96)


def test_pixelsake_sr(registry):
    gen = registry.build("pixelsake-sr", width=8, num_blocks=2)
    _compare(_pipeline(registry, "pixelsake-sr", gen), (160, 128), 40)


def test_example_plugin_faststyle(registry):
    gen = registry.build("faststyle", base_channels=8, num_res_blocks=1)
    _compare(_pipeline(registry, "faststyle", gen), (320, 256), 128)


def test_every_registered_translate_model_is_covered(registry):
    """A new translate model in a first-party or example plugin needs its case here."""
    covered = {"animegan", "cyclegan", "ae", "pixelsake-sr", "faststyle"}
    translate = {name for name, spec in registry.models.items() if spec.kind == "translate"}
    assert translate <= covered, translate - covered


def test_plan_finds_the_global_layers_without_running_the_net(registry):
    """Shapes only: GroupNorm calls gather statistics, attention is computed whole, the halo covers the reach."""
    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=2, attention="blocks")
    plan = plan_tiles(gen, 3, torch.float32, (1000, 1000), 256, 4)
    assert len(plan.norms) == 9  # 3 encoder, 2 x 2 in the blocks, 2 decoder: all instance norms
    assert list(plan.contexts) == [("attention", 0)] and plan.contexts[("attention", 0)].boundary
    assert plan.radius <= plan.halo < 256 // 4 and plan.padded == (1000, 1000) and plan.align == 4
    # an image too large to hold the attention map whole: per tile, and said so
    big = plan_tiles(gen, 3, torch.float32, (16384, 16384), 256, 4)
    assert not big.contexts and "self-attention" in big.notes[0]


def test_tile_zero_and_small_images_run_untiled(registry):
    assert TranslatePipeline.tile_for(4000, 3000, 0) is None
    assert TranslatePipeline.tile_for(4000, 3000) == 1024  # 12 MP: automatic
    assert TranslatePipeline.tile_for(1000, 800) is None and TranslatePipeline.tile_for(1000, 800, 512) == 512
    assert TranslatePipeline.tile_for(500, 400, 512) is None


def test_a_generator_that_cannot_be_traced_falls_back_to_blended_tiles(registry):
    class Opaque(nn.Module):  # reads values, as an ONNX Runtime session does: meta tensors have none
        stride = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(x.cpu().numpy()).to(x.device).tanh()

    pipe = _pipeline(registry, "faststyle", Opaque())
    image = io.to_tensor(make_image((100, 80), 1))
    out = pipe.translate(image, tile=40)
    assert "could not be traced" in pipe.last_tiling.notes[0]
    assert torch.allclose(out, pipe.translate(image, tile=0), atol=1e-5)


def _save_cyclegan(registry, path):
    from anime_core.weights.files import save_native

    options = {"arch": "resnet", "width": 8, "n_blocks": 1}
    return save_native(path, {"generator": _liven(registry.build("cyclegan", **options))}, "cyclegan", options)


def test_anime_run_says_why_it_tiles_and_tile_zero_turns_it_off(registry, tmp_path, monkeypatch, capsys):
    """Automatic tiling (here above 0.05 MP, in 96 px tiles) is one announced line; the file equals the untiled one."""
    import numpy as np
    from PIL import Image

    from anime_core.cli import main
    from anime_core.inference import pipeline

    monkeypatch.setattr(pipeline, "AUTO_TILE_PIXELS", 50_000)
    monkeypatch.setattr(pipeline, "DEFAULT_TILE", 96)
    monkeypatch.setattr("anime_core.cli.files.AUTO_TILE_PIXELS", 50_000)
    weights = _save_cyclegan(registry, tmp_path / "w.safetensors")
    make_image((320, 288), 3).save(tmp_path / "photo.png")
    outs = {}
    for name, extra in (("auto", []), ("off", ["--tile", "0"])):
        with pytest.raises(SystemExit) as done:
            main(["run", "cyclegan", "--weights", str(weights), str(tmp_path / "photo.png"),
                  "-o", str(tmp_path / f"{name}.png"), *extra])
        err = capsys.readouterr().err
        assert done.value.code == 0, err
        lines = [line for line in err.splitlines() if "tiling in" in line]
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), np.float64)
        if name == "auto":
            assert len(lines) == 1 and "320x288 is over 0.1 MP: tiling in 96 px tiles" in lines[0], err
            assert "--tile 0 turns this off" in lines[0] and "warning" not in err
        else:
            assert lines == [], err
    assert np.abs(outs["auto"] - outs["off"]).mean() <= MEAN_LIMIT
    assert not np.array_equal(outs["auto"], outs["off"])  # float rounding differs: the tiled path did run


def test_a_tile_under_16_px_is_a_usage_error(registry, tmp_path, capsys):
    weights = _save_cyclegan(registry, tmp_path / "w.safetensors")
    make_image((64, 64), 3).save(tmp_path / "photo.png")
    from anime_core.cli import main

    with pytest.raises(SystemExit) as done:
        main(["run", "cyclegan", "--weights", str(weights), str(tmp_path / "photo.png"), "--tile", "8"])
    assert done.value.code == 2 and "or 0 for no tiling" in capsys.readouterr().err
