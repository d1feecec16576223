"""The two generator families of Sharma & Das, "A CycleGAN Framework for Anime Style Image
Synthesis based on U-Net and Self-Attention" (section 3.5, 3.5.1 and section 4.2's two stages).

``UNetGenerator`` (section 3.5.1, the final model): 8 encoding layers (4x4 convolution stride 2,
InstanceNorm, LeakyReLU 0.2; 64, 128, 256, 512, 512, 512, 512, 512 channels; no norm on the
first) and 8 decoding layers (4x4 transposed convolution stride 2, InstanceNorm, ReLU) whose
outputs are concatenated with the mirrored encoder features (the "long skip connections"),
ending in tanh. It is pix2pix's ``unet_256`` (Isola et al., "Image-to-image translation with
conditional adversarial networks", section 3.2.1), which the paper cites for U-Net GANs, and like it:

- the innermost (8th) encoding layer has no norm: at 256x256 its output is 1x1, where
  InstanceNorm would subtract the only value and zero the bottleneck;
- the last decoding layer has no norm and ends in tanh instead of ReLU;
- convolutions keep their bias (pix2pix's choice with InstanceNorm): 54.41 M parameters at
  full width.

Self-attention (sections 3.3, 3.5.1, Table 3 variants): ``attention`` is ``none``, ``down``, ``up``
or ``both``; a :class:`anime_core.layers.SelfAttention` block follows each encoding (``down``)
and/or decoding (``up``) layer whose output side, *at the 256x256 training size*, is in
``attention_resolutions``. The paper only says the layers are "strategically placed" where
attention stays affordable (section 4.1); the default (32, 16) keeps the attention matrix at
1024^2 and 256^2 entries. On a larger input the same layers see proportionally larger maps.

``ResNetGenerator`` (section 4.2 first stage, Table 2; the CycleGAN generator of Johnson et al.
that Begum et al., "Anime face generating using deep learning", section 2.5.2 describes):
c7s1-64, d128, d256, ``n_blocks`` residual blocks of 256 channels (6, 8 or 9), u128, u64,
c7s1-3, reflection padding, InstanceNorm, tanh. The "with attention" variants put one
self-attention block after the residual blocks.

``Pix2PixUNet`` (``arch=pix2pix-unet``) is the U-Net of the CycleGAN/pix2pix PyTorch code (Isola
et al., section 3.2.1; ``unet_256`` with ``n_downs=8``, ``unet_128`` with 7), kept apart from
``UNetGenerator`` because its wiring differs, not only its names: the skip carries the encoder's
*normalised, not yet activated* output, the decoder input is ``[skip, up]`` and each decoder layer
starts with a ReLU over that whole concatenation (skip included), and its convolutions drop their
bias when followed by batch norm. ``norm=batch`` is pix2pix's choice, ``instance`` CycleGAN's;
the ResNet generator takes the same option.

All scale every width by ``width / 64`` (64 is the paper's width; tests use 8). Weights are
drawn from N(0, 0.02) (section 4.2, Table 1): the paper's "standard normal distribution from the
range of 0 and 0.2" read as the CycleGAN code's standard deviation 0.02; the attention ``gamma``
keeps its 0, so attention starts as the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from anime_core.errors import UsageError
from anime_core.layers import SelfAttention
from anime_core.ops import normal_init

ATTENTION = ("none", "down", "up", "both")
NORMS = ("instance", "batch")
UNET_MULTIPLIERS = (1, 2, 4, 8, 8, 8, 8, 8)  # encoder widths / width (Sharma & Das, section 3.5.1)
REFERENCE_SIZE = 256  # attention_resolutions are feature-map sides at this input size


def _check_attention(attention: str, allowed: Sequence[str]) -> None:
    if attention not in allowed:
        raise UsageError(f"generator option attention='{attention}' is not one of {', '.join(allowed)}")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise UsageError(f"generator option norm='{norm}' is not one of {', '.join(NORMS)}")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Affine-free InstanceNorm (CycleGAN) or BatchNorm with scale and shift (pix2pix)."""
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.InstanceNorm2d(channels)


def conv_bias(norm: str) -> bool:
    """A convolution followed by batch norm needs no bias (the norm's shift replaces it); CycleGAN keeps it."""
    return norm != "batch"


class UNetGenerator(nn.Module):
    """8-level U-Net with optional self-attention in the encoder and/or decoder (Sharma & Das, section 3.5.1)."""

    stride = 2 ** len(UNET_MULTIPLIERS)  # 256: every side must halve 8 times

    def __init__(
        self,
        width: int = 64,
        attention: str = "none",
        attention_resolutions: Sequence[int] = (32, 16),
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        _check_attention(attention, ATTENTION)
        widths = [width * m for m in UNET_MULTIPLIERS]
        depth = len(widths)
        sides = [REFERENCE_SIZE >> (i + 1) for i in range(depth)]  # encoder output sides: 128 ... 1
        resolutions = {int(r) for r in attention_resolutions}
        if attention != "none":
            bad = sorted(resolutions - set(sides[:-1]))
            if bad:
                raise UsageError(f"attention_resolutions {bad} are not U-Net feature sides; use some of {sides[:-1]}")
        att_down = attention in ("down", "both")
        att_up = attention in ("up", "both")

        self.down = nn.ModuleList()
        self.down_attention = nn.ModuleDict()
        c_in = in_channels
        for i, c in enumerate(widths):
            norm = 0 < i < depth - 1  # none on the first (Sharma & Das) nor on the 1x1 bottleneck (pix2pix)
            layers: list[nn.Module] = [nn.Conv2d(c_in, c, 4, 2, 1)]
            if norm:
                layers.append(nn.InstanceNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
            if att_down and sides[i] in resolutions:
                self.down_attention[str(i)] = SelfAttention(c)
            c_in = c

        # decoder layer j mirrors encoder layer depth-2-j; its output is concatenated with that skip
        self.up = nn.ModuleList()
        self.up_attention = nn.ModuleDict()
        for j in range(depth - 1):
            skip = depth - 2 - j
            c_out = widths[skip]
            c_in_up = widths[-1] if j == 0 else 2 * widths[skip + 1]
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(c_in_up, c_out, 4, 2, 1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)
            ))
            if att_up and sides[skip] in resolutions:
                self.up_attention[str(j)] = SelfAttention(c_out)
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1), nn.Tanh())
        normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, layer in enumerate(self.down):
            x = layer(x)
            if str(i) in self.down_attention:
                x = self.down_attention[str(i)](x)
            skips.append(x)
        for j, layer in enumerate(self.up):
            x = layer(x)
            if str(j) in self.up_attention:
                x = self.up_attention[str(j)](x)
            x = torch.cat([x, skips[-2 - j]], dim=1)
        return self.out(x)


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convolutions with a norm each, ReLU between, plus the input."""

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """c7s1-64, d128, d256, n x R256, [self-attention], u128, u64, c7s1-3 (Sharma & Das, Table 2 variants)."""

    stride = 4  # two stride-2 downsamplings

    def __init__(self, width: int = 64, n_blocks: int = 9, attention: bool = False,
                 in_channels: int = 3, out_channels: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if n_blocks < 1:
            raise UsageError(f"generator option n_blocks must be at least 1, not {n_blocks}")
        check_norm(norm)
        c1, c2, c3 = width, 2 * width, 4 * width
        b = conv_bias(norm)
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, c1, 7, bias=b), norm_layer(norm, c1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, 2, 1, bias=b), norm_layer(norm, c2), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 3, 2, 1, bias=b), norm_layer(norm, c3), nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[ResidualBlock(c3, norm) for _ in range(n_blocks)])
        # a separate attribute, so plain and attention variants share every other parameter name
        self.attention = SelfAttention(c3) if attention else nn.Identity()
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, 2, 1, output_padding=1, bias=b), norm_layer(norm, c2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1, bias=b), norm_layer(norm, c1), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3), nn.Conv2d(c1, out_channels, 7), nn.Tanh(),
        )
        normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.attention(self.blocks(self.encoder(x))))


class Pix2PixUNet(nn.Module):
    """The U-Net of the CycleGAN/pix2pix PyTorch code, layer for layer (Isola et al., section 3.2.1).

    Encoder level ``i`` is [LeakyReLU(0.2)] -> 4x4 conv stride 2 -> [norm]: no activation before
    the first, no norm on the first nor on the innermost. Decoder level ``j`` is ReLU -> 4x4
    transposed conv -> norm [-> dropout 0.5 on the ``n_downs - 5`` middle levels of 8 x width
    channels, with ``dropout``]; the last ends in tanh. Between decoder levels the input becomes
    ``[skip, up]``. Widths are ``width * min(2**i, 8)``.
    """

    def __init__(self, width: int = 64, n_downs: int = 8, norm: str = "batch", dropout: bool = False,
                 in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        check_norm(norm)
        if not 5 <= n_downs <= 12:
            raise UsageError(f"generator option n_downs must be between 5 and 12, not {n_downs}")
        self.stride = 2**n_downs
        b = conv_bias(norm)
        widths = [width * min(2**i, 8) for i in range(n_downs)]
        self.down = nn.ModuleList()
        for i, c in enumerate(widths):
            c_in = in_channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(c_in, c, 4, 2, 1, bias=b))
            if 0 < i < n_downs - 1:
                layers.append(norm_layer(norm, c))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for j in range(n_downs):
            level = n_downs - 1 - j  # the encoder level this decoder level mirrors
            c_in = widths[level] * (1 if j == 0 else 2)
            if level == 0:
                self.up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            c_out = widths[level - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=b), norm_layer(norm, c_out)]
            if dropout and 4 <= level < n_downs - 1:
                layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        normal_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The original's in-place LeakyReLU also rewrites the stored skip; the ReLU that opens the
        # next decoder level maps both versions to the same values, so plain activations suffice.
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = skips.pop()  # the innermost output feeds the decoder, it is no skip
        for layer in self.up[:-1]:
            x = torch.cat([skips.pop(), layer(x)], dim=1)
        return self.up[-1](x)


# -- the variants cyclegan.unet, .resnet, .pix2pix-unet (plugin.py); the core picks one by ``arch`` --
def build_unet(
    width: int = 64, attention: str = "none", attention_resolutions: Sequence[int] = (32, 16)
) -> UNetGenerator:
    """``cyclegan.unet``: the U-Net generator (Sharma & Das, section 3.5.1) with attention none|down|up|both."""
    return UNetGenerator(width=width, attention=attention, attention_resolutions=tuple(attention_resolutions))


def build_resnet(
    width: int = 64, n_blocks: int = 9, attention: str = "none", norm: str = "instance"
) -> ResNetGenerator:
    """``cyclegan.resnet``: ResNet-``n_blocks`` generator; attention ``blocks`` adds it after the residual blocks."""
    _check_attention(attention, ("none", "blocks"))
    return ResNetGenerator(width=width, n_blocks=n_blocks, attention=attention == "blocks", norm=norm)


def build_pix2pix_unet(width: int = 64, n_downs: int = 8, norm: str = "batch", dropout: bool = False) -> Pix2PixUNet:
    """``cyclegan.pix2pix-unet``: the CycleGAN/pix2pix code's U-Net (``unet_256``: ``n_downs=8``)."""
    return Pix2PixUNet(width=width, n_downs=n_downs, norm=norm, dropout=dropout)
