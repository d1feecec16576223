"""Losses of the dcgan plugin beyond the core's adversarial losses (:mod:`anime_core.losses`).

- Feature matching (paper 001, section 3.2.3 "Loss Functions"): Salimans et al. (2016, section 3.1)
  match the *batch mean* of discriminator features of real and generated images; the per-sample
  pairing of the core's :class:`~anime_core.losses.FeatureMatchingLoss` is applied to those means.
- L2 content loss (paper 001, same list): pixel-wise MSE between generated and real images of the batch.
- Perceptual loss on pretrained VGG19 features (paper 002, abstract and section 5; Johnson et al.
  2016): for generation it is feature matching on VGG features (batch means); for the enhancer it
  is the per-pair L1 distance of VGG features (ESRGAN's perceptual loss, before activation).
- PSNR, the metric paper 002 reports for the enhancer (section 4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.backbones import VGG19Features
from anime_core.losses import FeatureMatchingLoss


def mean_feature_matching(real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """L1 between the batch means of real and fake feature maps (real side detached)."""
    return FeatureMatchingLoss()([r.mean(0) for r in real_feats], [f.mean(0) for f in fake_feats])


class VGGPerceptual(nn.Module):
    """Frozen VGG19 features of the core; ``mode="pairs"`` (SR) or ``"means"`` (generation)."""

    def __init__(self, layers: Sequence[str], pretrained: bool = True, mode: str = "pairs") -> None:
        super().__init__()
        if mode not in ("pairs", "means"):
            raise ValueError(f"mode must be 'pairs' or 'means', got {mode!r}")
        self.vgg = VGG19Features(tuple(layers), pretrained=pretrained)
        self.mode = mode

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_feats = self.vgg(real)
        fake_feats = self.vgg(fake)
        if self.mode == "means":
            return mean_feature_matching(real_feats, fake_feats)
        return torch.stack([F.l1_loss(f, r) for f, r in zip(fake_feats, real_feats)]).mean()


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean PSNR in dB over the batch; images in [-1, 1] (``data_range`` 2) are clamped first."""
    pred = pred.float().clamp(-data_range / 2, data_range / 2)
    mse = ((pred - target.float()) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(data_range**2 / mse)).mean()
