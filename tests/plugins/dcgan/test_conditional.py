"""Class-conditional generator and projection discriminator use the label."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_dcgan.discriminator import DCGANDiscriminator
from anime_plugin_dcgan.generator import DCGANGenerator


def test_generator_output_depends_on_label_and_trains_embedding():
    torch.manual_seed(0)
    g = DCGANGenerator(image_size=32, width=8, num_classes=3, class_names=["a", "b", "c"]).eval()
    z = torch.randn(1, 100).repeat(3, 1)
    y = g(z, torch.tensor([0, 1, 2]))
    assert not torch.allclose(y[0], y[1]) and not torch.allclose(y[1], y[2])
    g.train()
    g(z[:2], torch.tensor([0, 2])).square().mean().backward()
    grad = g.embed.weight.grad
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert grad[1].abs().sum() == 0  # an unused class gets no gradient
    with pytest.raises(ValueError, match="class-conditional"):
        g(z)


def test_projection_discriminator_uses_label():
    torch.manual_seed(0)
    d = DCGANDiscriminator(32, width=8, num_classes=2, spectral_norm=True, batch_norm=False).eval()
    x = torch.randn(1, 3, 32, 32).repeat(2, 1, 1, 1)
    s = d(x, torch.tensor([0, 1]))
    assert s.shape == (2,) and float((s[0] - s[1]).abs().detach()) > 1e-4
    # the difference is exactly the projection <embed(y0) - embed(y1), sum_hw phi(x)>
    _, feats = d.forward_features(x[:1], torch.tensor([0]))
    phi = feats[-1].sum(dim=(2, 3))[0]
    e = d.embed.weight  # spectrally normalised embedding as used in forward
    torch.testing.assert_close(s[0] - s[1], ((e[0] - e[1]) * phi).sum(), rtol=1e-4, atol=1e-5)
