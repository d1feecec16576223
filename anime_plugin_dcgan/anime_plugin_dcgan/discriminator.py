"""DCGAN discriminator (Radford et al., "Unsupervised representation learning with deep convolutional
generative adversarial networks", section 3; Begum et al., "Anime face generating using deep
learning", section 3.2.2: "convolutional layers with downsampling") with the options of Shrivastava
et al., "PixelSake: Deep Convolution Generative Adversarial Network": spectral normalisation
(section 5, SNGAN), self-attention (section 6), a multi-scale wrapper (abstract), and class
conditioning by projection.

64 px: 4x4 stride-2 convs 3->64->128->256->512 (32, 16, 8, 4 px) with LeakyReLU 0.2 and
BatchNorm from the second conv on, then a 4x4 valid conv to one score (a logit). Larger inputs
add 512-channel stride-2 blocks so the last conv always sees 4x4; smaller ones drop blocks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

from anime_core.errors import UsageError
from anime_core.layers import SelfAttention
from anime_core.ops import normal_init
from anime_plugin_dcgan.generator import check_image_size


class DCGANDiscriminator(nn.Module):
    """``forward(x, label=None) -> (N,)`` scores; ``forward_features`` also returns block outputs.

    - ``batch_norm``: BN from the second block (DCGAN). SNGAN/SAGAN discriminators and WGAN-GP
      critics use none, so the ``pixelsake`` preset turns it off.
    - ``spectral_norm``: every conv (and the class embedding) is spectrally normalised, one power
      iteration per training forward (Miyato et al., "Spectral normalization for generative
      adversarial networks", Algorithm 1).
    - ``attention``: SAGAN self-attention after the block at side ``min(32, image_size / 2)``.
    - ``num_classes > 0``: projection discriminator (Miyato & Koyama, "cGANs with projection
      discriminator", eq. 3):
      ``score = psi(phi(x)) + <embed(y), sum_hw phi(x)>`` with ``phi`` the last 4x4 feature map.
      Projection is chosen over label channels because it is what SNGAN/SAGAN-style models use.
    """

    def __init__(
        self,
        image_size: int = 64,
        width: int = 64,
        batch_norm: bool = True,
        spectral_norm: bool = False,
        attention: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        self.image_size = image_size
        n = int(math.log2(image_size // 4))
        chans = [width * min(8, 2**i) for i in range(n)]
        attn_side = min(32, image_size // 2)
        self.blocks = nn.ModuleList()
        c_in, side = 3, image_size
        for i, c_out in enumerate(chans):
            block: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not (batch_norm and i > 0))]
            if batch_norm and i > 0:
                block.append(nn.BatchNorm2d(c_out))
            block.append(nn.LeakyReLU(0.2, inplace=True))
            side //= 2
            if attention and side == attn_side:
                block.append(SelfAttention(c_out))
            self.blocks.append(nn.Sequential(*block))
            c_in = c_out
        self.head = nn.Conv2d(c_in, 1, 4, 1, 0)
        self.embed = nn.Embedding(num_classes, c_in) if num_classes else None
        self.num_classes = num_classes
        normal_init(self)
        if spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Embedding)):
                    sn(m)

    def forward_features(
        self, x: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        h = x
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        score = self.head(h).flatten(1).sum(1)
        if self.embed is not None:
            if label is None:
                raise ValueError("this discriminator is class-conditional: pass label=(N,) class indices")
            score = score + (self.embed(label.long()) * h.sum(dim=(2, 3))).sum(1)
        return score, feats

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x, label)[0]


class MultiScaleDiscriminator(nn.Module):
    """The discriminator applied to the image at full, 1/2, 1/4 ... resolution (Shrivastava et al.,
    "PixelSake", abstract: "multi-scale discriminator"; the design of its reference [10], Wang et al.,
    "High-resolution image synthesis and semantic manipulation with conditional GANs", section 3.2).

    As in pix2pixHD each scale has its own discriminator of the same architecture (one block fewer
    per halving, so each ends on a 4x4 map) and the image is down-sampled with a 3x3 stride-2
    average pool. ``forward`` returns one score tensor per scale; the core losses sum them.
    """

    def __init__(self, num_scales: int = 3, image_size: int = 64, **options: object) -> None:
        super().__init__()
        if image_size >> (num_scales - 1) < 8:
            raise ValueError(f"{num_scales} scales of a {image_size} px image go below 8 px; use fewer scales")
        self.num_scales = num_scales
        self.scales = nn.ModuleList(
            DCGANDiscriminator(image_size >> k, **options) for k in range(num_scales)  # type: ignore[arg-type]
        )

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward_features(
        self, x: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, feats = [], []
        for k, d in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            s, f = d.forward_features(x, label)
            scores.append(s)
            feats += f
        return scores, feats

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self.forward_features(x, label)[0]


def build_discriminator(
    image_size: int = 64,
    width: int = 64,
    batch_norm: bool = True,
    spectral_norm: bool = False,
    attention: bool = False,
    num_classes: int = 0,
    num_scales: int = 1,
) -> nn.Module:
    """Builder ``dcgan.d`` (and ``pixelsake-sr.d``): one discriminator, or a :class:`MultiScaleDiscriminator`
    when ``num_scales > 1``; the options are the ``discriminator:`` section of the config."""
    check_image_size(image_size)
    if num_scales < 1:
        raise UsageError(f"discriminator.num_scales must be at least 1, not {num_scales}")
    if image_size >> (num_scales - 1) < 8:
        raise UsageError(f"{num_scales} discriminator scales of a {image_size} px image go below 8 px; "
                         "set discriminator.num_scales lower")
    opts = dict(width=width, batch_norm=batch_norm, spectral_norm=spectral_norm, attention=attention,
                num_classes=num_classes)
    if num_scales > 1:
        return MultiScaleDiscriminator(num_scales, image_size, **opts)
    return DCGANDiscriminator(image_size, **opts)  # type: ignore[arg-type]
