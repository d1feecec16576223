"""Losses of the dcgan plugin beyond the core's (:mod:`anime_core.losses`), registered by name in plugin.py.

- ``mean_feature_matching``: feature matching (Begum et al., "Anime face generating using deep
  learning", section 3.2.3, Loss Functions) as Salimans et al., "Improved techniques for training
  GANs", section 3.1, define it: the *batch means* of discriminator features of real and generated
  images are matched; the core's :class:`~anime_core.losses.FeatureMatchingLoss` (L1) compares them.
- ``content_l2``: the L2 / content loss of the same list, pixel-wise MSE between generated and real
  images of the batch.
- ``vgg_perceptual``: the perceptual loss on pretrained VGG19 features (Shrivastava et al.,
  "PixelSake: Deep Convolution Generative Adversarial Network", abstract; Johnson et al.,
  "Perceptual losses for real-time style transfer and super-resolution", section 3.2). For
  generation (``mode="means"``) it is feature matching on VGG features; for the enhancer
  (``mode="pairs"``) the per-pair L1 of VGG features before activation (Wang et al., "ESRGAN:
  Enhanced super-resolution generative adversarial networks", section 3.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.backbones import VGG19Features
from anime_core.errors import UsageError
from anime_core.losses import FeatureMatchingLoss


class MeanFeatureMatchingLoss(nn.Module):
    """L1 between the batch means of real and fake feature maps (real side detached)."""

    def forward(self, real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return FeatureMatchingLoss()([r.mean(0) for r in real_feats], [f.mean(0) for f in fake_feats])


class ContentL2Loss(nn.MSELoss):
    """Pixel-wise mean squared error ``(fake, real)``."""


class VGGPerceptual(nn.Module):
    """Frozen VGG19 features of the core; ``forward(fake, real)``, ``mode`` ``"pairs"`` (SR) or ``"means"``."""

    def __init__(self, layers: Sequence[str] = ("conv5_4",), pretrained: bool = True, mode: str = "pairs") -> None:
        super().__init__()
        if mode not in ("pairs", "means"):
            raise UsageError(f"vgg_perceptual mode must be 'pairs' or 'means', not {mode!r}")
        self.vgg = VGG19Features(tuple(layers), pretrained=pretrained)
        self.mode = mode
        self.matching = MeanFeatureMatchingLoss()

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_feats = self.vgg(real)
        fake_feats = self.vgg(fake)
        if self.mode == "means":
            return self.matching(real_feats, fake_feats)
        return torch.stack([F.l1_loss(f, r) for f, r in zip(fake_feats, real_feats)]).mean()
