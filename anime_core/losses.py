"""Standard GAN and reconstruction losses shared by the paper plugins.

Adversarial losses share one interface: ``d_loss(real_pred, fake_pred)`` and
``g_loss(fake_pred)``; a prediction may be a tensor or a list of tensors (multi-scale
discriminators), in which case the per-scale losses are summed.

- ``lsgan``: X. Mao et al., "Least Squares Generative Adversarial Networks" (ICCV 2017), section 3.2:
  ``E[(D(x)-1)^2] + E[D(G(z))^2]``.
- ``bce``: I. Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014), section 3: the minimax loss
  with the non-saturating generator term ``-log D(G(z))``.
- ``hinge``: J. H. Lim, J. C. Ye, "Geometric GAN" (arXiv:1705.02894, 2017):
  ``E[relu(1-D(x))] + E[relu(1+D(G(z)))]``, generator ``-E[D(G(z))]``.
- ``wgan``: M. Arjovsky et al., "Wasserstein GAN" (ICML 2017), section 3; add :func:`gradient_penalty` for
  WGAN-GP: I. Gulrajani et al., "Improved Training of Wasserstein GANs" (NeurIPS 2017), section 4, eq. 3.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Pred = torch.Tensor | Sequence[torch.Tensor]


def _sum_scales(pred: Pred, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    if isinstance(pred, torch.Tensor):
        return fn(pred)
    return torch.stack([fn(p) for p in pred]).sum()


class AdversarialLoss(nn.Module, ABC):
    """Base of the adversarial losses: ``forward(pred, real)`` is the loss against the real/fake label."""

    @abstractmethod
    def target_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        """The loss of ``pred`` against the real (``True``) or fake label."""

    def forward(self, pred: Pred, real: bool) -> torch.Tensor:
        return _sum_scales(pred, lambda p: self.target_loss(p, real))

    def d_loss(self, real_pred: Pred, fake_pred: Pred) -> torch.Tensor:
        return self(real_pred, True) + self(fake_pred, False)

    def g_loss(self, fake_pred: Pred) -> torch.Tensor:
        return self(fake_pred, True)


class LSGANLoss(AdversarialLoss):
    """Least squares: mean of ``(pred - 1)^2`` for real, ``pred^2`` for fake."""

    def target_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return ((pred.float() - (1.0 if real else 0.0)) ** 2).mean()


class BCELoss(AdversarialLoss):
    """Binary cross-entropy on logits; the generator uses the non-saturating ``-log D(G(z))``."""

    def target_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        pred = pred.float()
        target = torch.ones_like(pred) if real else torch.zeros_like(pred)
        return F.binary_cross_entropy_with_logits(pred, target)


class HingeLoss(AdversarialLoss):
    """Hinge loss for the discriminator; ``-E[D(G(z))]`` for the generator."""

    def target_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        pred = pred.float()
        return F.relu(1.0 - pred).mean() if real else F.relu(1.0 + pred).mean()

    def g_loss(self, fake_pred: Pred) -> torch.Tensor:
        return _sum_scales(fake_pred, lambda p: -p.float().mean())


class WGANLoss(AdversarialLoss):
    """Wasserstein critic: ``-E[D(x)] + E[D(G(z))]``; generator ``-E[D(G(z))]``."""

    def target_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        pred = pred.float()
        return -pred.mean() if real else pred.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], Pred],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``weight * E[(||grad D(x_hat)||_2 - 1)^2]`` on random interpolates (eq. 3).

    ``alpha`` (N, 1, 1, 1) may be given for a deterministic check; by default it is uniform.
    """
    if alpha is None:
        alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    score = out.sum() if isinstance(out, torch.Tensor) else torch.stack([o.sum() for o in out]).sum()
    (grad,) = torch.autograd.grad(score, x_hat, create_graph=True)
    norm = grad.flatten(1).norm(2, dim=1)
    return weight * ((norm - 1) ** 2).mean()


class L1Loss(nn.L1Loss):
    """Mean absolute error."""


class HuberLoss(nn.HuberLoss):
    """Huber (smooth L1) loss with threshold ``delta`` (default 1)."""


class FeatureMatchingLoss(nn.Module):
    """L1 between lists of intermediate features of real and fake images.

    T. Salimans et al., "Improved Techniques for Training GANs" (NeurIPS 2016), section 3.1 (feature matching).

    Real features are detached: the loss trains the generator only.
    """

    def forward(self, real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(real_feats) != len(fake_feats) or not real_feats:
            raise ValueError("feature matching needs two equally long, non-empty feature lists")
        losses = [F.l1_loss(f.float(), r.detach().float()) for r, f in zip(real_feats, fake_feats)]
        return torch.stack(losses).mean()
