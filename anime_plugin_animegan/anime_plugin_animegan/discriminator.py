"""AnimeGAN discriminator: CartoonGAN's patch discriminator with spectral norm.

G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.1
and Fig. 1 (the discriminator of Y. Chen, Y.-K. Lai, Y.-J. Liu, "CartoonGAN: generative
adversarial networks for photo cartoonization", section 3.1) and section 4.2 (4.30 MB).
All convolutions are 3x3 and bias-free with spectral normalisation (Miyato et al., "Spectral
normalization for generative adversarial networks") on every weight; LeakyReLU(0.2); affine
InstanceNorm after the stride-1 widening convs, as the official code (``ch=64, n_dis=3``) builds it:
conv 3->32 s1, LReLU; conv 32->64 s2, LReLU; conv 64->128 s1, IN, LReLU; conv 128->128 s2, LReLU;
conv 128->256 s1, IN, LReLU; conv 256->256 s1, IN, LReLU; conv 256->1 (patch logits at H/4 x W/4).
1,128,800 parameters (the paper's 4.30 MB). Zero padding 1 on every side (PyTorch convention; the
TF code pads strided layers top/left only, which shifts the patch grid by a pixel at most).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    return spectral_norm(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False))


class Discriminator(nn.Module):
    """Patch discriminator of CartoonGAN/AnimeGAN; ``width`` (the official code's ``ch``) is the width of
    the second conv: the first has ``width // 2`` channels, the widest ``(width // 2) * 2**n_dis``."""

    def __init__(self, width: int = 64, n_dis: int = 3, spectral: bool = True) -> None:
        super().__init__()
        conv = _conv if spectral else (lambda i, o, s=1: nn.Conv2d(i, o, 3, stride=s, padding=1, bias=False))
        c = width // 2
        layers: list[nn.Module] = [conv(3, c), nn.LeakyReLU(0.2)]
        c_in = c
        for _ in range(1, n_dis):
            layers += [conv(c_in, c * 2, 2), nn.LeakyReLU(0.2),
                       conv(c * 2, c * 4), nn.InstanceNorm2d(c * 4, affine=True), nn.LeakyReLU(0.2)]
            c_in, c = c * 4, c * 2
        layers += [conv(c_in, c * 2), nn.InstanceNorm2d(c * 2, affine=True), nn.LeakyReLU(0.2), conv(c * 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_discriminator(width: int = 64, n_dis: int = 3, spectral: bool = True) -> Discriminator:
    """``animegan.d``: the paper's discriminator (defaults), narrower with ``width`` for quick tests."""
    from anime_core.errors import UsageError

    if width < 2 or n_dis < 1:
        raise UsageError(f"AnimeGAN discriminator needs width >= 2 and n_dis >= 1, not width={width}, n_dis={n_dis}")
    return Discriminator(width, n_dis, spectral)
