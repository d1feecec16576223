"""DCGAN generator (Radford et al., "Unsupervised representation learning with deep convolutional
generative adversarial networks", section 3) as Begum et al., "Anime face generating using deep
learning", section 3.2.2 use it (100-d noise, transposed convolutions), with the options of Shrivastava
et al., "PixelSake: Deep Convolution Generative Adversarial Network" (self-attention, section 6;
128/256 px) and class conditioning (Begum et al., section 3.1: datasets "with tagged attributes
like gender, expression").

z (latent 100) -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3: 4x4 transposed convs,
BatchNorm and ReLU in every hidden block, tanh at the output, weights N(0, 0.02).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from anime_core.errors import UsageError
from anime_core.layers import SelfAttention
from anime_core.ops import normal_init


def generator_channels(image_size: int, width: int) -> list[int]:
    """Channels of the hidden feature maps from 4x4 up to ``image_size / 2``.

    64 px: [8w, 4w, 2w, w] (the DCGAN layout). Larger images add up blocks at the low-resolution
    end with 8w channels (128 px: [8w, 8w, 4w, 2w, w]), so the cost at high resolution stays that of
    the 64 px model; smaller test images (32 px) drop the widest block ([4w, 2w, w]).
    """
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8 (64, 128 or 256), got {image_size}")
    n = int(math.log2(image_size // 4))  # number of 2x up-samplings from 4x4
    return [width * min(8, 2 ** (n - 1 - i)) for i in range(n)]


class DCGANGenerator(nn.Module):
    """``forward(z, label=None)``: z of shape (N, latent_dim) or (N, latent_dim, 1, 1) -> (N, 3, S, S) in [-1, 1].

    ``num_classes > 0`` makes it class-conditional: a learned label embedding of ``embed_dim`` is
    concatenated to z (Mirza & Osindero, "Conditional generative adversarial nets", section 3.2);
    ``label`` is then required. ``class_names`` only records the class folder names for
    ``anime run dcgan --class NAME``. ``attention`` inserts a self-attention layer after the hidden
    block at side ``min(32, image_size / 2)``, the best placement (feat32) of Zhang et al.,
    "Self-attention generative adversarial networks", section 5.2, Table 1.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 64,
        width: int = 64,
        attention: bool = False,
        num_classes: int = 0,
        embed_dim: int = 50,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = latent_dim + (embed_dim if num_classes else 0)
        chans = generator_channels(image_size, width)
        attn_side = min(32, image_size // 2)
        layers: list[nn.Module] = [  # project: 1x1 -> 4x4 with a 4x4 transposed conv
            nn.ConvTranspose2d(in_dim, chans[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(True)
        ]
        side = 4
        for c_in, c_out in itertools.pairwise(chans):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
            side *= 2
            if attention and side == attn_side:
                layers.append(SelfAttention(c_out))
        if attention and attn_side == 4:
            layers.insert(3, SelfAttention(chans[0]))
        layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        normal_init(self)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.size(0), -1)
        if self.embed is not None:
            if label is None:
                raise ValueError("this generator is class-conditional: pass label=(N,) class indices")
            z = torch.cat([z, self.embed(label.to(z.device).long()).to(z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


def check_image_size(image_size: int) -> None:
    """The builders' check: a power of two >= 8, else a usage error that says what to set."""
    if image_size < 8 or image_size & (image_size - 1):
        raise UsageError(f"dcgan needs an image size that is a power of two >= 8 (64, 128 or 256), not {image_size}; "
                         "set train.image_size")


def build_generator(
    latent_dim: int = 100,
    image_size: int = 64,
    width: int = 64,
    attention: bool = False,
    num_classes: int = 0,
    embed_dim: int = 50,
    class_names: Sequence[str] = (),
) -> DCGANGenerator:
    """Builder ``dcgan``: the options are the ``generator:`` section of the config (see :class:`DCGANGenerator`)."""
    check_image_size(image_size)
    return DCGANGenerator(latent_dim, image_size, width, attention, num_classes, embed_dim, class_names)
