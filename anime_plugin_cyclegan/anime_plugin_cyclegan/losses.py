"""CycleGAN's objective: Sharma & Das, "A CycleGAN Framework for Anime Style Image Synthesis based
on U-Net and Self-Attention" (section 3.5.3, eq. 1-4); Begum et al., "Anime face generating using
deep learning" (sections 2.5.4-2.5.5).

``L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda * L_cyc(G, F) + L_identity(G, F)`` (eq. 1) with

- ``L_cyc = E||F(G(x)) - x||_1 + E||G(F(y)) - y||_1`` (eq. 2), weighted ``loss.cycle_weight``
  (lambda = 10);
- ``L_identity = E||G(y) - y||_1 + E||F(x) - x||_1`` (eq. 4), weighted ``loss.identity_weight``
  (5 = Begum et al.'s "0.5 lambda", section 2.5.5, CycleGAN's ``lambda_identity = 0.5``);
- the adversarial terms: the registered loss ``loss.adversarial`` names, least squares by default
  (what CycleGAN trains with, Begum et al. section 2.5.4) or the log-likelihood form of eq. 3 as
  ``bce``.

The L1 norms are means over pixels, as in CycleGAN. Both losses are registered (``cycle_l1``,
``identity_l1``) and built by the task through the registry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CycleLoss(nn.Module):
    """Eq. 2: ``||F(G(x)) - x||_1 + ||G(F(y)) - y||_1`` (unweighted)."""

    def forward(self, x: torch.Tensor, rec_x: torch.Tensor, y: torch.Tensor, rec_y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(rec_x, x) + F.l1_loss(rec_y, y)


class IdentityLoss(nn.Module):
    """Eq. 4: ``||G(y) - y||_1 + ||F(x) - x||_1`` (unweighted)."""

    def forward(self, x: torch.Tensor, f_x: torch.Tensor, y: torch.Tensor, g_y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(g_y, y) + F.l1_loss(f_x, x)
