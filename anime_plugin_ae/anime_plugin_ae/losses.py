"""Objective and metrics (paper II.C, Table III).

II.C.1 / Table III: the training objective is the mean squared error, here between the predicted
and the target chroma a*b* / 128 (``lab`` variants) or RGB in [-1, 1] (``rgb``).
II.C.2: PSNR = 10 log10(MAX^2 / MSE); it is reported on the composed RGB image in [0, 1] (MAX 1),
averaged over images, so numbers compare across variants and with the paper's Table V.
The ``vae`` variant adds the KL divergence of its Gaussian posterior from N(0, I) (research
question 2), averaged over latent elements so ``loss.kl_weight`` is relative to the per-pixel MSE.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianKL(nn.Module):
    """KL(N(mu, exp(logvar)) || N(0, I)), mean over all latent elements."""

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.float().square() + logvar.float().exp() - 1.0 - logvar.float()).mean()


def psnr(pred: torch.Tensor, target: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB (N,) of images in [0, max_value] (II.C.2); identical images give 100 dB."""
    mse = (pred.float() - target.float()).square().flatten(1).mean(1)
    return 10.0 * torch.log10(max_value**2 / mse.clamp_min(1e-10))
