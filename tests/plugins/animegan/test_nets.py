"""AnimeGAN networks: parameter counts of the paper / published layouts, key names, odd input sizes."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_animegan.generator import GeneratorV1, GeneratorV2
from PIL import Image

import anime_core
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.registry import get_registry


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_paper_and_the_published_weights():
    assert n_params(anime_core.build("animegan", "generator")) == 3_956_096  # Table 1 (default variant v1)
    assert n_params(anime_core.build("animegan", "generator", variant="v2")) == 2_143_552
    assert n_params(anime_core.build("animegan", "discriminator")) == 1_128_800  # 4.30 MB (4.2)


def test_builders_dispatch_and_reject_unknown_variants():
    assert isinstance(anime_core.build("animegan", "generator", variant="v1"), GeneratorV1)
    reg = get_registry()
    assert isinstance(reg.generator("animegan.v2").builder()(), GeneratorV2)
    with pytest.raises(anime_core.errors.UsageError, match="unknown animegan variant .v3.; use one of v1, v2"):
        anime_core.build("animegan", "generator", variant="v3")


def test_v2_state_dict_keys_are_the_pytorch_layout():
    keys = list(GeneratorV2().state_dict())
    assert keys[:3] == ["block_a.0.1.weight", "block_a.0.2.weight", "block_a.0.2.bias"]
    assert "block_c.1.layers.0.1.weight" in keys and "block_c.1.layers.1.1.bias" in keys  # depthwise conv has a bias
    assert "block_c.1.layers.2.weight" in keys and "block_c.1.layers.3.weight" in keys
    # 12 CNLs (a 3, b 2, c 2, d 2, e 3) x 3 keys; 4 IRBs x 10 keys (CNL 3, dw CNL 4, pw 1, norm 2); out 1
    assert keys[-1] == "out_layer.0.weight" and len(keys) == 12 * 3 + 4 * 10 + 1
    assert not any(k.startswith("block_c.1.layers.2.bias") for k in keys)


def test_discriminator_is_spectral_normalised_patch_critic():
    d = anime_core.build("animegan", "discriminator", width=8)  # narrow copy, same structure
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 and all(hasattr(m, "parametrizations") for m in convs)
    assert all(m.bias is None for m in convs)
    assert d(torch.randn(2, 3, 32, 48)).shape == (2, 1, 8, 12)  # two stride-2 convs


@torch.no_grad()
def test_generators_keep_the_size_and_range():
    g1, g2 = GeneratorV1().eval(), GeneratorV2().eval()
    assert g1.stride == 4 and g2.stride == 1
    y = g1(torch.randn(1, 3, 36, 44))
    assert y.shape == (1, 3, 36, 44) and y.abs().max() <= 1
    y = g2(torch.randn(1, 3, 37, 45))  # v2 resizes to the skip sizes: any size works
    assert y.shape == (1, 3, 37, 45) and y.abs().max() <= 1


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_pipeline_odd_size_gives_same_size_output(variant):
    torch.manual_seed(0)
    spec = get_registry().model("animegan")
    pipe = TranslatePipeline(spec, {"generator": anime_core.build("animegan", "generator", variant=variant)},
                             device="cpu")
    img = Image.new("RGB", (53, 41), (120, 30, 200))  # odd sides: v1 pads to 56 x 44 and crops back
    out = pipe(img)
    assert out.size == (53, 41)
