"""Self-attention layer of SAGAN (Zhang et al. 2019, section 3), used by PixelSake's generator and
discriminator (paper 002, section 6: "attention mechanisms ... promote style consistency")."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class SelfAttention(nn.Module):
    """``y = x + gamma * o``, ``o = v(x) softmax(q(x)^T k(x))`` over all positions.

    Query and key use ``channels // 8`` 1x1 convs as in SAGAN; ``gamma`` starts at 0 so the
    layer is the identity at initialisation and attention is blended in as training goes.
    (SAGAN's official code also max-pools keys/values 2x; this is the plain form of eq. 1-3.)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q = rearrange(self.query(x), "n c h w -> n (h w) c")
        k = rearrange(self.key(x), "n c h w -> n c (h w)")
        v = rearrange(self.value(x), "n c h w -> n c (h w)")
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # (n, query position, key position)
        o = torch.bmm(v, attn.transpose(1, 2))
        return x + self.gamma * rearrange(o, "n c (h w) -> n c h w", h=h, w=w)
