"""Generators, self-attention and PatchGAN: shapes, parameter counts, identity at initialisation."""

from __future__ import annotations

import itertools

import pytest
import torch
from anime_plugin_cyclegan.config import RESNET_STRIDE, UNET_STRIDE
from anime_plugin_cyclegan.discriminator import PatchDiscriminator, build_discriminator
from anime_plugin_cyclegan.generator import ResNetGenerator, UNetGenerator

import anime_core
from anime_core.errors import UsageError
from anime_core.layers import SelfAttention


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def attention_params(c: int) -> int:
    return 2 * conv(c, c // 8, 1) + conv(c, c, 1) + 1


def test_self_attention_is_identity_at_init_and_matches_the_sagan_formula():
    torch.manual_seed(0)
    att = SelfAttention(16)
    x = torch.randn(2, 16, 5, 3)
    assert torch.equal(att(x), x)  # gamma = 0
    with torch.no_grad():
        att.gamma.fill_(0.7)
    q, k, v = att.query(x).flatten(2), att.key(x).flatten(2), att.value(x).flatten(2)  # (N, C', HW)
    beta = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # beta[i, j]: position i attends to j, no scaling
    expected = x + 0.7 * (v @ beta.transpose(1, 2)).view_as(x)
    torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-5)
    att.max_scores = 2 * 15  # 2 query rows per chunk of the 15 positions: same numbers, bounded memory
    torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-5)
    assert n_params(att) == attention_params(16)


@pytest.mark.parametrize("attention", ["none", "down", "up", "both"])
def test_unet_variants_shapes_and_attention_placement(attention):
    torch.manual_seed(0)
    width = 8
    g = UNetGenerator(width=width, attention=attention)
    assert g.stride == UNET_STRIDE == 256  # the config's crop-size check and the network agree
    x = torch.rand(1, 3, 256, 512) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    # default resolutions 32 and 16 are encoder layers 3 and 4 (4*width, 8*width channels) and
    # decoder layers 4 and 5 (outputs 16x16 with 8*width, 32x32 with 4*width channels)
    down = {"none": [], "down": ["2", "3"], "up": [], "both": ["2", "3"]}[attention]
    up = {"none": [], "down": [], "up": ["3", "4"], "both": ["3", "4"]}[attention]
    assert list(g.down_attention) == down and list(g.up_attention) == up
    extra = (attention in ("down", "both")) + (attention in ("up", "both"))
    plain = n_params(UNetGenerator(width=width))
    assert n_params(g) - plain == extra * (attention_params(4 * width) + attention_params(8 * width))


def test_unet_full_width_parameter_count_follows_the_layer_list():
    """Sharma & Das (section 3.5.1) widths 64..512 x8, pix2pix's biases: count every 4x4 (transposed) conv by hand."""
    enc = [3, 64, 128, 256, 512, 512, 512, 512, 512]
    down = sum(conv(a, b, 4) for a, b in itertools.pairwise(enc))
    up = conv(512, 512, 4) + 3 * conv(1024, 512, 4) + conv(1024, 256, 4) + conv(512, 128, 4)
    up += conv(256, 64, 4) + conv(128, 3, 4)
    assert n_params(UNetGenerator()) == down + up == 54_409_603


@pytest.mark.parametrize("attention", ["down", "up", "both"])
def test_unet_attention_is_identity_at_init(attention):
    torch.manual_seed(0)
    plain = UNetGenerator(width=8)
    att = UNetGenerator(width=8, attention=attention, attention_resolutions=(64, 32, 16))
    missing = att.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all("attention" in k for k in missing)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert torch.equal(att(x), plain(x))


def test_unet_bottleneck_has_no_instance_norm():
    g = UNetGenerator(width=8)
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.down[0])  # Sharma & Das: none on the first
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.down[-1])  # 1x1 at 256: pix2pix practice
    assert all(isinstance(layer[1], torch.nn.InstanceNorm2d) for layer in g.down[1:-1])


@pytest.mark.parametrize("n_blocks", [6, 8, 9])
@pytest.mark.parametrize("attention", [False, True])
def test_resnet_variants(n_blocks, attention):
    torch.manual_seed(0)
    g = ResNetGenerator(width=8, n_blocks=n_blocks, attention=attention)
    assert g.stride == RESNET_STRIDE == 4
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert len(g.blocks) == n_blocks
    expected = n_params(ResNetGenerator(width=8, n_blocks=1)) + (n_blocks - 1) * 2 * conv(32, 32, 3)
    assert n_params(g) == expected + (attention_params(32) if attention else 0)
    if attention:
        plain = ResNetGenerator(width=8, n_blocks=n_blocks)
        missing = g.load_state_dict(plain.state_dict(), strict=False).missing_keys
        assert missing and all(k.startswith("attention.") for k in missing)
        with torch.no_grad():
            assert torch.equal(g(x), plain(x))


def test_resnet9_matches_cyclegan_size():
    assert n_params(ResNetGenerator(n_blocks=9)) == 11_378_179  # CycleGAN prints 11.378 M for resnet_9blocks


def test_patchgan_map_size_and_attention():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    d = PatchDiscriminator(width=8)
    with torch.no_grad():
        assert d(x).shape == (2, 1, 30, 30)  # 70x70 receptive fields on a 256x256 input
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    field = 1
    for c in reversed(convs):  # receptive field of one output, back through every 4x4 convolution
        field = (field - 1) * c.stride[0] + c.kernel_size[0]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1] and field == 70
    assert n_params(PatchDiscriminator()) == 2_764_737  # CycleGAN's basic D: 2.765 M
    da = PatchDiscriminator(width=8, attention=True)
    assert n_params(da) - n_params(d) == attention_params(32)
    missing = da.load_state_dict(d.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("attention.") for k in missing)
    with torch.no_grad():
        assert torch.equal(da(x), d(x))


def test_builders_through_the_registry(registry):
    g = anime_core.build("cyclegan", "generator", arch="resnet", n_blocks=9, width=8)
    assert isinstance(g, ResNetGenerator) and len(g.blocks) == 9
    g = anime_core.build("cyclegan", "generator", width=8, attention="both")
    assert isinstance(g, UNetGenerator) and len(g.down_attention) == len(g.up_attention) == 2
    d = anime_core.build("cyclegan", "discriminator", width=8, attention=True)
    assert isinstance(d, PatchDiscriminator)
    unet = registry.generator("cyclegan.unet").builder()(width=8, attention="up", attention_resolutions=[64])
    assert list(unet.up_attention) == ["5"]
    resnet = registry.generator("cyclegan.resnet").builder()(width=8, n_blocks=6, attention="blocks")
    assert isinstance(resnet.attention, SelfAttention) and len(resnet.blocks) == 6
    with pytest.raises(UsageError, match="unknown cyclegan arch 'vit'; use one of unet, resnet, pix2pix-unet"):
        anime_core.build("cyclegan", "generator", arch="vit")
    with pytest.raises(UsageError, match="not U-Net feature sides"):
        anime_core.build("cyclegan", "generator", width=8, attention="down", attention_resolutions=[48])
    with pytest.raises(UsageError, match="none, blocks"):
        anime_core.build("cyclegan", "generator", arch="resnet", attention="both")
    with pytest.raises(UsageError, match="no option 'depth'"):
        anime_core.build("cyclegan", "generator", depth=3)
    with pytest.raises(UsageError, match="no option 'ngf'"):  # the old name of width is no option any more
        anime_core.build("cyclegan", "generator", ngf=8)
    assert registry.discriminator("cyclegan.d").builder() is build_discriminator


def test_weights_are_initialised_normal_002():
    torch.manual_seed(0)
    g = UNetGenerator()
    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    w = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 1e-3
    assert all(float(m.bias.detach().abs().max()) == 0 for m in convs)
