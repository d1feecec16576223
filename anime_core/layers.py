"""Building blocks shared by several papers' networks.

``SelfAttention``: SAGAN self-attention (H. Zhang et al., "Self-Attention Generative Adversarial
Networks", ICML 2019, section 3, eq. 1-3), which Sharma & Das ("A CycleGAN Framework for Anime Style
Image Synthesis based on U-Net and Self-Attention", sections 3.3, 3.5) add to their U-Net and
discriminator, and Shrivastava et al. ("PixelSake: Deep Convolution Generative Adversarial Network",
section 6) to their DCGAN generator and discriminator.

``y = x + gamma * o`` with ``o_i = sum_j softmax_j(q_i . k_j) v_j``: 1x1 convolutions give the
query and key at ``C/8`` channels and the value at ``C``; the softmax runs over all ``H*W``
positions; ``gamma`` starts at 0 so the block is the identity at initialisation and the net
learns how much global context to mix in. SAGAN uses no ``1/sqrt(d)`` scaling, so the product is
:func:`torch.nn.functional.scaled_dot_product_attention` with ``scale=1``.

Memory: the score matrix has ``(H*W)^2`` entries, 1 GiB per image in fp32 for a 128x128 map
(the ResNet generator's attention on a 512x512 input). Fused kernels that avoid it need equal
query and value widths, which SAGAN's C/8 vs C are not, so the queries are processed in chunks
that keep at most ``max_scores`` score entries per image alive: exact, and bounded memory at any
input size (Sharma & Das, section 4.1, place attention "where computational demands needed to be minimized").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Self-attention over the spatial positions of a ``(N, C, H, W)`` feature map."""

    #: score entries per image computed at once (2^24: 64 MiB in fp32); 0 = all at once
    max_scores: int = 2**24

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # (N, C', H, W) -> (N, 1 head, H*W, C') as scaled_dot_product_attention expects
        q = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)
        k = self.key(x).flatten(2).transpose(1, 2).unsqueeze(1)
        v = self.value(x).flatten(2).transpose(1, 2).unsqueeze(1)
        positions = h * w
        rows = positions if self.max_scores <= 0 else max(1, self.max_scores // positions)
        o = torch.cat([F.scaled_dot_product_attention(qc, k, v, scale=1.0) for qc in q.split(rows, dim=2)], dim=2)
        o = o.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return x + self.gamma * o
