"""The autoencoder (Abbas et al., "Ordinary to Anime", section II.D): shapes, stride, parameters, variants, VAE."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_ae.generator import AEOutput, build_generator
from anime_plugin_ae.losses import GaussianKL

import anime_core
from anime_core.errors import UsageError

NARROW = {"widths": [8, 16, 32], "encoding_filters": 16, "latent_channels": 4}


def test_default_is_the_paper_network(registry):
    g = anime_core.build("ae", "generator")
    assert (g.in_channels, g.out_channels, g.stride) == (1, 2, 8)
    assert g.encoding[0].out_channels == 256  # II.D: the 256-filter encoding Conv2D
    assert [lvl[0][0].stride for lvl in g.encoder] == [(2, 2)] * 3  # each level halves the resolution
    assert [lvl[0][0].out_channels for lvl in g.encoder] == [64, 128, 256]  # ... and widens the filters
    assert all(m.negative_slope == 0.3 for m in g.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert isinstance(g.head[-1], torch.nn.Tanh)


@pytest.mark.parametrize(("variant", "cin", "cout"), [("lab", 1, 2), ("rgb", 3, 3), ("skip", 1, 2), ("vae", 1, 2)])
def test_shapes_at_256_and_other_stride_multiples(variant, cin, cout):
    g = build_generator(variant, **NARROW).eval()
    with torch.no_grad():
        assert g(torch.randn(1, cin, 256, 256)).shape == (1, cout, 256, 256)
        y = g(torch.randn(2, cin, 40, 24))
    assert y.shape == (2, cout, 40, 24) and y.abs().max() <= 1  # tanh: a*b*/128 or RGB in [-1, 1]


def test_parameter_count_by_hand():
    g = build_generator("lab", widths=[4], encoding_filters=8)
    # conv 1->4 (40) + 4->4 (148) | encoding 4->8 (296) | up, 8->4 (292) + 4->4 (148) | head 4->2 (74)
    assert sum(p.numel() for p in g.parameters()) == 40 + 148 + 296 + 292 + 148 + 74
    assert build_generator("lab", widths=[4, 8]).stride == 4


def test_skip_variant_uses_encoder_features():
    g = build_generator("skip", widths=[4, 8], encoding_filters=8)
    assert g.decoder[0][1][0].in_channels == 8 + 8 and g.decoder[1][1][0].in_channels == 8 + 4
    assert g.head[0].in_channels == 4 + 1  # the input itself joins the head


def test_vae_posterior_sampling_and_kl():
    torch.manual_seed(0)
    g = build_generator("vae", widths=[4, 8], encoding_filters=8, latent_channels=3)
    x = torch.randn(2, 1, 16, 16)
    out = g(x, return_posterior=True)
    assert isinstance(out, AEOutput) and out.mu.shape == out.logvar.shape == (2, 3, 4, 4)
    assert not torch.equal(g(x), g(x))  # training: reparameterised sample
    g.eval()
    assert torch.equal(g(x), g(x))  # inference: the posterior mean
    kl = GaussianKL()
    assert float(kl(torch.zeros(3), torch.zeros(3))) == 0.0
    # 0.5 * (mu^2 + e^lv - 1 - lv): (mu=1, lv=0) -> 0.5, (mu=0, lv=log 2) -> 0.5 * (1 - log 2)
    expected = (0.5 + 0.5 * (1 - torch.log(torch.tensor(2.0)))) / 2
    torch.testing.assert_close(kl(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 2.0]).log()), expected)


def test_unknown_variant_is_a_usage_error_naming_the_variants(registry):
    with pytest.raises(UsageError, match="unknown ae variant 'unet'; use one of lab, rgb, skip, vae") as err:
        build_generator("unet")
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="lab, rgb, skip, vae"):  # through the public builder too
        anime_core.build("ae", "generator", variant="unet")


def test_public_builder_takes_the_config_option_names(registry):
    g = anime_core.build("ae", "generator", variant="skip", widths=[4, 8], encoding_filters=8, negative_slope=0.1)
    assert (g.in_channels, g.out_channels, g.skip, g.stride) == (1, 2, True, 4)
    assert g.encoding[0].out_channels == 8
    assert {m.negative_slope for m in g.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.1}
    vae = anime_core.build("ae", "generator", variant="vae", widths=[4], latent_channels=3)
    assert vae.variational and vae.latent_channels == 3
    with pytest.raises(UsageError, match="has no option 'width'; did you mean 'widths'"):
        anime_core.build("ae", "generator", width=8)
