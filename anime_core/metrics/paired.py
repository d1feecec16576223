"""Paired (full-reference) metrics: PSNR, SSIM and LPIPS, one score per image pair.

All on images in [0, 1]; SSIM and LPIPS are torchmetrics' implementations:

- PSNR (Abbas et al., "Ordinary to Anime", section II.C.2, ``10 log10(MAX^2 / MSE)``; PixelSake's enhancer) with
  ``MAX = 1`` on 8-bit images scaled to [0, 1], i.e. the usual 8-bit PSNR: :func:`anime_core.ops.psnr`, the
  one PSNR of the project (training logs, int8 export checks and ``anime eval``). Identical images give +inf,
  as in torchmetrics.
- SSIM (Z. Wang et al., "Image quality assessment: from error visibility to structural similarity",
  IEEE TIP 2004, section III) with the standard 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, averaged
  over the RGB channels.
- LPIPS (R. Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
  CVPR 2018, section 3) with the AlexNet backbone and the v0.1 linear heads (the "lpips" package's
  default, which torchmetrics ships). The AlexNet ImageNet weights go through the core's verified cache
  (``anime weights pull|import backbone:alexnet``) instead of torchvision's own download.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.functional.image.lpips import _NoTrainLpips

from anime_core.errors import WeightsUnavailable
from anime_core.ops import psnr as psnr  # the one PSNR (+inf for identical images), as anime_core.metrics.psnr
from anime_core.weights import fetch
from anime_core.weights.files import read_state
from anime_core.weights.known import ALEXNET_KEY, ALEXNET_SOURCE

#: torchvision's AlexNet ImageNet weights, the backbone LPIPS was calibrated with


def ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of (N, 3, H, W) images in [0, 1] (Gaussian 11x11 window, sigma 1.5)."""
    return structural_similarity_index_measure(fake.double(), real.double(), data_range=1.0, reduction="none")


class LPIPS(nn.Module):
    """LPIPS distance (AlexNet, v0.1 heads) between (N, 3, H, W) images in [0, 1]; returns (N,).

    ``backbone`` gives the AlexNet ``features.*`` weights directly (tests); by default they come verified
    from the cache under ``backbone:alexnet``.
    """

    name = "lpips-v0.1 alexnet"

    def __init__(self, backbone: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()

        if backbone is None:
            backbone, _ = read_state(fetch(ALEXNET_KEY, ALEXNET_SOURCE))
        # pnet_rand: build the backbone without torchvision's download; the linear heads come from
        # the file torchmetrics ships, then the verified AlexNet weights go into the slices.
        self.net = _NoTrainLpips(net="alex", pretrained=True, pnet_rand=True)
        for part in self.net.net.children():
            for index, layer in part.named_children():
                for pname, param in layer.named_parameters():
                    key = f"features.{index}.{pname}"
                    if key not in backbone:
                        raise WeightsUnavailable(f"AlexNet weights lack {key}; import torchvision's alexnet file")
                    param.data.copy_(backbone[key])
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> LPIPS:  # always frozen in eval mode
        return super().train(False)

    @torch.inference_mode()
    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.net(fake.float(), real.float(), normalize=True).reshape(len(fake))
