"""Architecture of the dcgan plugin: shapes, ranges, parameter counts, options."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_dcgan.discriminator import DCGANDiscriminator, MultiScaleDiscriminator
from anime_plugin_dcgan.generator import DCGANGenerator, generator_channels
from anime_plugin_dcgan.sr.generator import SRGenerator

import anime_core
from anime_core.layers import SelfAttention


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_generator_shapes_range_and_size():
    g = anime_core.build("dcgan", "generator").eval()
    assert g.latent_dim == 100
    z = torch.randn(3, 100)
    y = g(z)
    assert y.shape == (3, 3, 64, 64)
    assert y.min() >= -1 and y.max() <= 1
    torch.testing.assert_close(g(z[:, :, None, None]), y)
    # the classic DCGAN layout 100 -> 512x4x4 -> 256 -> 128 -> 64 -> 3 without conv biases
    assert n_params(g) == 3_576_704
    assert generator_channels(64, 64) == [512, 256, 128, 64]
    assert generator_channels(128, 64) == [512, 512, 256, 128, 64]


@pytest.mark.parametrize("size", [32, 128, 256])
def test_generator_other_resolutions(size):
    g = DCGANGenerator(image_size=size, width=4)
    assert g(torch.randn(2, 100)).shape == (2, 3, size, size)


def test_generator_rejects_bad_size():
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(image_size=96)


def test_discriminator_layout():
    d = anime_core.build("dcgan", "discriminator")
    assert isinstance(d, DCGANDiscriminator)
    x = torch.randn(2, 3, 64, 64)
    score, feats = d.forward_features(x)
    assert score.shape == (2,)
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    # BatchNorm from the second block on, not in the first (DCGAN)
    bns = [any(isinstance(m, torch.nn.BatchNorm2d) for m in b) for b in d.blocks]
    assert bns == [False, True, True, True]
    # convs 3*64*16+64, 64*128*16, 128*256*16, 256*512*16, BN 2*(128+256+512), head 512*16+1
    assert n_params(d) == 3 * 64 * 16 + 64 + (64 * 128 + 128 * 256 + 256 * 512) * 16 + 2 * 896 + 512 * 16 + 1
    assert anime_core.build("dcgan", "discriminator", image_size=128)(torch.randn(2, 3, 128, 128)).shape == (2,)


def test_init_is_dcgan_normal():
    g = DCGANGenerator(width=16)
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(float(w.mean())) < 2e-3
    assert float(w.std()) == pytest.approx(0.02, rel=0.05)


def test_multiscale_discriminator_scores_per_scale():
    d = anime_core.build("dcgan", "discriminator", num_scales=3, width=8)
    assert isinstance(d, MultiScaleDiscriminator)
    assert [s.image_size for s in d.scales] == [64, 32, 16]
    scores = d(torch.randn(2, 3, 64, 64))
    assert isinstance(scores, list) and len(scores) == 3
    assert all(s.shape == (2,) for s in scores)
    # the scales are separate networks: their scores differ
    assert not torch.allclose(scores[0], scores[1])
    with pytest.raises(ValueError, match="below 8 px"):
        MultiScaleDiscriminator(num_scales=4, image_size=32)


def test_self_attention_starts_as_identity_and_mixes_positions():
    attn = SelfAttention(16)
    x = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(attn(x), x)  # gamma = 0
    with torch.no_grad():
        attn.gamma.fill_(1.0)
    x2 = x.clone()
    x2[:, :, 0, 0] += 5  # changing one position changes the output at another (global receptive field)
    assert not torch.allclose(attn(x)[:, :, 3, 3], attn(x2)[:, :, 3, 3])
    g = DCGANGenerator(image_size=64, width=8, attention=True)
    d = DCGANDiscriminator(64, width=8, attention=True)
    g_attn = [m for m in g.modules() if isinstance(m, SelfAttention)]
    d_attn = [m for m in d.modules() if isinstance(m, SelfAttention)]
    assert [m.value.in_channels for m in g_attn] == [8] and [m.value.in_channels for m in d_attn] == [8]
    assert g(torch.randn(2, 100)).shape == (2, 3, 64, 64)


def test_spectral_norm_bounds_largest_singular_value():
    torch.manual_seed(0)
    d = DCGANDiscriminator(32, width=8, spectral_norm=True, batch_norm=False)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # one power iteration per training forward
        d(x)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.03)
    plain = DCGANDiscriminator(32, width=8, batch_norm=False)
    sig = [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) for m in plain.modules()
           if isinstance(m, torch.nn.Conv2d)]
    assert max(abs(s - 1) for s in sig) > 0.3  # without it the weights are not normalised


def test_sr_generator_upsamples_4x_and_starts_at_bicubic():
    g = anime_core.build("pixelsake-sr", "generator", width=8, num_blocks=2)
    assert g.stride == 1 and g.scale == 4
    x = torch.rand(2, 3, 8, 12) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, 32, 48)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(y, bicubic)  # zero-initialised residual branch
    assert len(g.upsample) == 6  # two x2 pixel-shuffle stages
    plain = SRGenerator(width=8, num_blocks=2, bicubic_skip=False)
    assert not torch.allclose(plain(x), bicubic, atol=1e-2)
