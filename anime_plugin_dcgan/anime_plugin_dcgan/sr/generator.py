"""Generator of ``pixelsake-sr``, the "Image enhancer" of Shrivastava et al., "PixelSake: Deep
Convolution Generative Adversarial Network" (section 4, Fig. 8): a GAN super-resolution network
that up-samples 4x (32x32 -> 128x128 in the paper).

The paper names no layers, only a GAN-based 4x up-sampler. Its super-resolution reference is
ESRGAN (its reference [23]: Wang et al., "ESRGAN: Enhanced super-resolution generative adversarial
networks"), so this follows the SRResNet/ESRGAN layout: a 3x3 conv head, residual blocks *without*
BatchNorm (ESRGAN, section 3.1), a long skip over the body, two x2 pixel-shuffle stages (Shi et
al., "Real-time single image and video super-resolution using an efficient sub-pixel
convolutional neural network", section 2.2) and a 3x3 conv tail. With ``bicubic_skip`` the net
predicts a residual over the bicubic up-sampled input (global residual learning: Kim et al.,
"Accurate image super-resolution using very deep convolutional networks", section 3.2), so an
untrained model starts at bicubic quality; turn it off for the plain ESRGAN form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.errors import UsageError


class ResidualBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3, scaled by ``res_scale`` and added to the input (ESRGAN, section 3.1)."""

    def __init__(self, width: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(True), nn.Conv2d(width, width, 3, 1, 1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class SRGenerator(nn.Module):
    """(N, 3, h, w) in [-1, 1] -> (N, 3, scale*h, scale*w) in [-1, 1] (not clamped while training)."""

    stride = 1  # any input size works

    def __init__(
        self, scale: int = 4, width: int = 64, num_blocks: int = 16, res_scale: float = 1.0, bicubic_skip: bool = True
    ) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, got {scale}")
        self.scale = scale
        self.bicubic_skip = bicubic_skip
        self.head = nn.Conv2d(3, width, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlock(width, res_scale) for _ in range(num_blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1))
        up: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            up += [nn.Conv2d(width, width * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, True)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(width, 3, 3, 1, 1)
        if bicubic_skip:  # start exactly at bicubic: the residual branch outputs zeros
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        y = self.tail(self.upsample(h + self.body(h)))
        if self.bicubic_skip:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return y


def build_generator(
    scale: int = 4, width: int = 64, num_blocks: int = 16, res_scale: float = 1.0, bicubic_skip: bool = True
) -> SRGenerator:
    """Builder ``pixelsake-sr``: the options are the ``generator:`` section of ``configs/sr.yaml``."""
    if scale < 2 or scale & (scale - 1):
        raise UsageError(f"pixelsake-sr needs a scale that is a power of two >= 2, not {scale}; set generator.scale=4")
    if num_blocks < 0 or width < 1:
        raise UsageError(f"pixelsake-sr needs generator.width >= 1 and generator.num_blocks >= 0 "
                         f"(got width={width}, num_blocks={num_blocks})")
    return SRGenerator(scale, width, num_blocks, res_scale, bicubic_skip)
