"""CycleGAN's objective (paper 3.5.3, eq. 1-4; paper 001 section 2.5.4-2.5.5).

``L = L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda * L_cyc(G, F) + L_identity(G, F)`` (eq. 1) with

- ``L_cyc = E||F(G(x)) - x||_1 + E||G(F(y)) - y||_1`` (eq. 2), ``lambda = 10``;
- ``L_identity = E||G(y) - y||_1 + E||F(x) - x||_1`` (eq. 4), weighted ``0.5 * lambda`` (paper 001
  2.5.5, CycleGAN's ``lambda_identity = 0.5``);
- the adversarial terms: least squares by default (what CycleGAN trains with, paper 001 2.5.4),
  or the paper's log-likelihood form (eq. 3) as ``gan_loss: bce``; both come from
  :mod:`anime_core.losses`.

The L1 norms are means over pixels, as in CycleGAN.
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
