"""Objective of S. Abbas et al., "Ordinary to Anime: An Artistic & Technical Inquiry using Auto
Encoders", section II.C and Table III.

II.C.1 / Table III: the training objective is the mean squared error, here between the predicted
and the target chroma a*b* / 128 (``lab`` variants) or RGB in [-1, 1] (``rgb``); the task takes
it from torch. II.C.2's PSNR is :func:`anime_core.ops.psnr`. The ``vae`` variant (section I.C,
research question 2) adds the KL divergence of its Gaussian posterior from N(0, I), registered as
the loss ``ae.kl`` and averaged over latent elements so ``loss.kl_weight`` is relative to the
per-pixel MSE.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianKL(nn.Module):
    """KL(N(mu, exp(logvar)) || N(0, I)), mean over all latent elements."""

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.float().square() + logvar.float().exp() - 1.0 - logvar.float()).mean()
