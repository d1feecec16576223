"""The convolutional autoencoder of S. Abbas et al., "Ordinary to Anime: An Artistic & Technical
Inquiry using Auto Encoders", section II.D and Table III.

II.D: input (256, 256, 1); "several convolutional layers make up the encoder, which gradually
reduces the spatial dimensions while adding more filters"; "a Conv2D layer with 256 filters makes
up the encoding layer and provides a compressed representation"; "upsampling and additional
convolutional layers are used during the decoding stage"; LeakyReLU activations (Table III);
predictions of shape (N, 256, 256, 2) (section III). The paper gives no kernel sizes or depths, so the
layers follow the Keras colourisation autoencoder this design comes from: 3x3 ``same`` convs,
stride-2 convs to halve the resolution, nearest ``UpSampling2D`` in the decoder, a ``tanh``
output of a*b* / 128.

Default (variant ``lab``), widths (64, 128, 256), 256 encoding filters, input side S::

    L (1, S)    -> [conv3x3/2 + conv3x3] x 3 with LeakyReLU: 64 @ S/2, 128 @ S/4, 256 @ S/8
                -> encoding conv3x3, 256 filters @ S/8 (the compressed representation)
                -> [up x2 + conv3x3 + conv3x3] x 3 with LeakyReLU: 256 @ S/4, 128 @ S/2, 64 @ S
                -> conv3x3 -> tanh -> a*b* / 128 (2, S)

The LeakyReLU slope defaults to 0.3, Keras' default ``LeakyReLU()`` (the paper is a Keras model:
channels-last shapes, a checkpoint callback), and the weights start as a Keras ``Conv2D`` starts
them: Glorot uniform kernels (U(-a, a), a = sqrt(6 / (fan_in + fan_out))) and zero biases, not
PyTorch's Kaiming-uniform ones. Variants (section I.C, research question 2:
"convolutional autoencoders, variational autoencoders (VAEs)"): ``rgb`` maps RGB to RGB (3 -> 3),
``skip`` adds U-Net skip connections (encoder features concatenated into the decoder at equal
resolution, and the input into the head) for sharper detail, ``vae`` makes the encoding a
Gaussian posterior (1x1 convs to mean and log-variance, reparameterised sample while training,
the mean at inference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from anime_core.errors import UsageError

VARIANTS = {
    # variant: (in_channels, out_channels, skip, variational)
    "lab": (1, 2, False, False),
    "rgb": (3, 3, False, False),
    "skip": (1, 2, True, False),
    "vae": (1, 2, False, True),
}


@dataclass
class AEOutput:
    """What training needs: the output, the encoding (the VAE posterior mean) and the VAE log-variance."""

    image: torch.Tensor
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


@torch.no_grad()
def keras_init(module: nn.Module) -> nn.Module:
    """Keras' ``Conv2D`` defaults: ``glorot_uniform`` kernels, ``zeros`` biases (in place; returns ``module``)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _conv(cin: int, cout: int, stride: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(slope))


class EncoderLevel(nn.Sequential):
    """Halve the resolution (stride-2 conv) and widen the filters, then one more conv."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__(_conv(cin, cout, 2, slope), _conv(cout, cout, 1, slope))


class DecoderLevel(nn.Sequential):
    """Double the resolution (nearest up-sampling, Keras ``UpSampling2D``), then two convs."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout, 1, slope),
                         _conv(cout, cout, 1, slope))


class AutoEncoder(nn.Module):
    """Convolutional (optionally variational, optionally U-Net) autoencoder; see the module docstring.

    ``forward(x)`` returns the output tensor in [-1, 1] (a*b* / 128 for 1 -> 2 channels);
    ``forward(x, return_posterior=True)`` returns an :class:`AEOutput` for the training task.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        widths: Sequence[int] = (64, 128, 256),
        encoding_filters: int = 256,
        latent_channels: int = 64,
        skip: bool = False,
        variational: bool = False,
        negative_slope: float = 0.3,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths:
            raise ValueError("widths needs at least one encoder level")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.skip, self.variational = skip, variational
        self.stride = 2 ** len(widths)
        self.encoder = nn.ModuleList(
            EncoderLevel(cin, cout, negative_slope) for cin, cout in zip([in_channels, *widths[:-1]], widths)
        )
        self.encoding = _conv(widths[-1], encoding_filters, 1, negative_slope)
        bottom = encoding_filters
        if variational:
            self.to_mu = nn.Conv2d(encoding_filters, latent_channels, 1)
            self.to_logvar = nn.Conv2d(encoding_filters, latent_channels, 1)
            bottom = latent_channels
        self.latent_channels = bottom
        outs = widths[::-1]
        ins = [bottom, *outs[:-1]]
        extra = outs if skip else [0] * len(outs)  # encoder features at the same resolution
        self.decoder = nn.ModuleList(DecoderLevel(c + e, o, negative_slope) for c, e, o in zip(ins, extra, outs))
        self.head = nn.Sequential(nn.Conv2d(outs[-1] + (in_channels if skip else 0), out_channels, 3, 1, 1), nn.Tanh())
        keras_init(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """Input -> (encoding or posterior mean, log-variance or None, encoder features for skips)."""
        feats = []
        h = x
        for level in self.encoder:
            h = level(h)
            feats.append(h)
        h = self.encoding(h)
        if not self.variational:
            return h, None, feats
        return self.to_mu(h), self.to_logvar(h).clamp(-30.0, 20.0), feats

    def decode(
        self, z: torch.Tensor, feats: Sequence[torch.Tensor] = (), x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Latent (N, latent_channels, H/stride, W/stride) -> output; skips need ``feats`` and ``x``."""
        h = z
        for i, level in enumerate(self.decoder):
            if self.skip:
                h = torch.cat([h, feats[len(feats) - 1 - i]], dim=1)
            h = level(h)
        if self.skip:
            h = torch.cat([h, x], dim=1)
        return self.head(h)

    def forward(self, x: torch.Tensor, return_posterior: bool = False) -> torch.Tensor | AEOutput:
        z, logvar, feats = self.encode(x)
        mu = z
        if self.variational and self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        y = self.decode(z, feats, x)
        return AEOutput(y, mu, logvar) if return_posterior else y


def build_generator(
    variant: str = "lab",
    widths: Sequence[int] = (64, 128, 256),
    encoding_filters: int = 256,
    latent_channels: int = 64,
    negative_slope: float = 0.3,
) -> AutoEncoder:
    """The ae autoencoder: ``variant`` is lab (default, L -> a*b*), rgb (RGB -> RGB), skip (U-Net) or vae."""
    if variant not in VARIANTS:
        raise UsageError(f"unknown ae variant '{variant}'; use one of {', '.join(VARIANTS)}")
    cin, cout, skip, variational = VARIANTS[variant]
    return AutoEncoder(cin, cout, widths, encoding_filters, latent_channels, skip, variational, negative_slope)


# The variants, registered as ``ae.lab``, ``ae.rgb``, ``ae.skip``, ``ae.vae`` (plugin.py): the core builds the one the
# ``variant`` option names, and reads each one's options from its signature (``build_generator``'s, less ``variant``).
build_lab = partial(build_generator, "lab")  # L -> a*b* (section II.D, see the module docstring)
build_rgb = partial(build_generator, "rgb")  # RGB -> RGB
build_skip = partial(build_generator, "skip")  # L -> a*b* with U-Net skip connections
build_vae = partial(build_generator, "vae")  # variational L -> a*b*
