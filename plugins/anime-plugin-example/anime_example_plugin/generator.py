"""Image transformation network of Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution" (ECCV 2016), Section 3.1 and the supplementary material (Table 1).

c9s1-32, d64, d128 (3x3 stride-2 convs), five residual blocks of 128 channels, u64, u32
(fractionally strided 3x3 convs), c9s1-3 with a scaled tanh. Every conv but the last is followed
by normalisation and ReLU. Residual blocks are conv-norm-ReLU-conv-norm plus the identity, with no
ReLU after the addition (the design of Gross & Wilber the paper cites).

Readings where the paper and the field differ (all options, paper values available):
- ``norm="instance"`` by default: the paper uses batch norm; instance norm (Ulyanov et al. 2016,
  "Instance Normalization") is what the authors' later fast-neural-style code and most ports use,
  and it removes the dependence of a picture on its batch. ``norm="batch"`` is the paper.
- Convolutions pad by reflection to keep sizes, instead of the paper's unpadded convs on an input
  reflection-padded by 40 px, so any input whose sides are multiples of ``stride`` = 4 keeps its size.
- The tanh output is in [-1, 1] (the core's image range) rather than scaled to [0, 255].
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import Tensor, nn

from anime_core.errors import UsageError

Norm = Literal["instance", "batch"]
Upsample = Literal["deconv", "nearest"]


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'instance' or 'batch', not {kind!r}")


def conv_block(cin: int, cout: int, kernel: int, stride: int, norm: Norm) -> nn.Sequential:
    """Reflection-padded conv, normalisation, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode="reflect"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    )


def up_block(cin: int, cout: int, norm: Norm, mode: Upsample) -> nn.Sequential:
    """x2 upsampling: fractionally strided conv (paper) or nearest resize + conv (Odena et al. 2016)."""
    if mode == "deconv":
        up: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
    elif mode == "nearest":
        up = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, padding_mode="reflect")]
    else:
        raise ValueError(f"upsample must be 'deconv' or 'nearest', not {mode!r}")
    return nn.Sequential(*up, _norm(norm, cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """conv3-norm-ReLU-conv3-norm + identity (supplementary material, Figure 1)."""

    def __init__(self, channels: int, norm: Norm) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_block(channels, channels, 3, 1, norm),
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode="reflect"),
            _norm(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """Feed-forward style transfer network: (N, 3, H, W) in [-1, 1] -> (N, 3, H, W) in [-1, 1]."""

    stride = 4  # two stride-2 downsamplings

    def __init__(
        self, base_channels: int = 32, num_res_blocks: int = 5, norm: Norm = "instance", upsample: Upsample = "deconv"
    ) -> None:
        super().__init__()
        c = base_channels
        self.encoder = nn.Sequential(
            conv_block(3, c, 9, 1, norm), conv_block(c, 2 * c, 3, 2, norm), conv_block(2 * c, 4 * c, 3, 2, norm)
        )
        self.residual = nn.Sequential(*(ResidualBlock(4 * c, norm) for _ in range(num_res_blocks)))
        self.decoder = nn.Sequential(
            up_block(4 * c, 2 * c, norm, upsample),
            up_block(2 * c, c, norm, upsample),
            nn.Conv2d(c, 3, 9, 1, padding=4, padding_mode="reflect"),
            nn.Tanh(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.residual(self.encoder(x)))


def build_generator(
    base_channels: int = 32, num_res_blocks: int = 5, norm: Norm = "instance", upsample: Upsample = "deconv"
) -> TransformNet:
    """The ``faststyle`` builder: the ``generator:`` section of the config is its keyword arguments."""
    for key, value, allowed in (("norm", norm, Norm), ("upsample", upsample, Upsample)):
        if value not in get_args(allowed):
            raise UsageError(f"faststyle: generator.{key} must be one of {', '.join(get_args(allowed))}, not {value!r}")
    if base_channels < 1 or num_res_blocks < 0:
        raise UsageError("faststyle: set generator.base_channels >= 1 and generator.num_res_blocks >= 0")
    return TransformNet(base_channels, num_res_blocks, norm, upsample)
