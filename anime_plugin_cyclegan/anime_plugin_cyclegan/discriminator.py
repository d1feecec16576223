"""70x70 PatchGAN discriminator of Sharma & Das, "A CycleGAN Framework for Anime Style Image Synthesis
based on U-Net and Self-Attention" (section 3.5.2), as in Begum et al., "Anime face generating using
deep learning" (section 2.5.3) and Isola et al., "Image-to-image translation with conditional
adversarial networks" (section 3.2.2).

C64 (no norm) - C128 - C256 - C512 (stride 1) - 1-channel map: 4x4 convolutions with padding 1,
InstanceNorm, LeakyReLU 0.2. Each output sees a 70x70 input patch; a 256x256 input gives a 30x30
map of real/fake scores (logits; the adversarial loss decides how they are read).

Sharma & Das (section 3.5) put self-attention "in both the Generator and Discriminator"; with
``attention=True`` an :class:`anime_core.layers.SelfAttention` block follows C256 (32x32 at 256x256,
the generator's default attention resolution). Their own analysis (section 4.4.1) describes the
discriminator as plain down-sampling blocks, so the default is off. Weights are N(0, 0.02) like
the generators' (see :mod:`anime_plugin_cyclegan.generator`). ``norm=batch`` is pix2pix's
variant: BatchNorm with scale and shift, and no bias on the convolutions it follows.
"""

from __future__ import annotations

import torch
from torch import nn

from anime_core.layers import SelfAttention
from anime_core.ops import normal_init
from anime_plugin_cyclegan.generator import check_norm, conv_bias, norm_layer


class PatchDiscriminator(nn.Module):
    """``n_layers`` stride-2 blocks after C64, one stride-1 block, then a 1-channel 4x4 convolution."""

    def __init__(
        self, width: int = 64, n_layers: int = 3, attention: bool = False, in_channels: int = 3, norm: str = "instance"
    ) -> None:
        super().__init__()
        check_norm(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        c = width
        head: list[nn.Module] = []
        for i in range(1, n_layers + 1):
            c_out = width * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            block = [
                nn.Conv2d(c, c_out, 4, stride, 1, bias=conv_bias(norm)), norm_layer(norm, c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            (layers if i < n_layers else head).extend(block)
            c = c_out
        head.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.features = nn.Sequential(*layers)  # C64 ... C256: the stride-2 part
        # a separate attribute, so plain and attention variants share every other parameter name
        self.attention = SelfAttention(layers[-3].out_channels) if attention else nn.Identity()
        self.head = nn.Sequential(*head)  # C512 (stride 1) and the 1-channel output
        normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(self.features(x)))


def build_discriminator(
    width: int = 64, n_layers: int = 3, attention: bool = False, norm: str = "instance"
) -> PatchDiscriminator:
    """``cyclegan.d``: the 70x70 PatchGAN (``n_layers=3``), optionally with self-attention; norm instance|batch."""
    return PatchDiscriminator(width=width, n_layers=n_layers, attention=attention, norm=norm)
