"""Perceptual losses of Johnson et al. 2016, Section 3.2-3.3.

- Feature reconstruction (content) loss, eq. 2: ``||phi_j(y_hat) - phi_j(y)||^2 / (C_j H_j W_j)``,
  i.e. the mean squared error of VGG features (``F.mse_loss``; no class needed).
- Style reconstruction loss, eq. 3-4: Gram matrices ``G_j = phi phi^T / (C_j H_j W_j)`` compared by
  squared Frobenius norm. The paper sums the squared differences; the authors' fast-neural-style
  code averages them over the C_j^2 entries (an MSE), and its default weights (``loss.style_weight``)
  assume that reading, so :class:`GramStyleLoss` averages too.
- Total variation regulariser, Section 3.3 ("Simple loss functions", after Mahendran & Vedaldi):
  sum of squared differences between neighbouring pixels, averaged here over the image.
"""

from __future__ import annotations

from torch import Tensor, nn


def gram(features: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices normalised by C*H*W (eq. 3)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class GramStyleLoss(nn.Module):
    """Mean squared difference of Gram matrices; ``target`` is features (N, C, H, W) or Grams (N|1, C, C)."""

    def forward(self, features: Tensor, target: Tensor) -> Tensor:
        target_gram = target if target.dim() == 3 else gram(target)
        return (gram(features) - target_gram.expand(features.size(0), -1, -1)).pow(2).mean()


class TotalVariationLoss(nn.Module):
    """Mean squared difference between horizontally and vertically neighbouring pixels."""

    def forward(self, image: Tensor) -> Tensor:
        dh = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
        dw = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
        return dh + dw

