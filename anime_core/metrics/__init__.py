"""Evaluation metrics for ``anime eval``: FID, KID, IS, precision/recall, PSNR, SSIM, LPIPS.

``evaluate(real_dir, fake_dir, "fid,kid,psnr")`` returns a :class:`Report`; the feature-level
functions (``fid``, ``kid``, ``inception_score``, ``precision_recall``) and the paired ones
(``psnr``, ``ssim``, ``LPIPS``) are usable on their own. Pretrained weights (Inception-v3,
AlexNet) go through the core's verified cache and are listed by ``anime weights list``.
"""

from __future__ import annotations

from anime_core.metrics.distribution import fid, inception_score, kid, precision_recall
from anime_core.metrics.evaluate import DISTRIBUTION, METRICS, PAIRED, Report, Score, evaluate, parse_metrics
from anime_core.metrics.inception import INCEPTION_KEY, INCEPTION_SOURCE, InceptionV3Features
from anime_core.metrics.paired import ALEXNET_KEY, ALEXNET_SOURCE, LPIPS, psnr, ssim
from anime_core.specs import WeightsSource


def known_weights() -> dict[str, WeightsSource]:
    """Metric backbones the ``anime weights`` command manages (the catalog picks these up)."""
    return {INCEPTION_KEY: INCEPTION_SOURCE, ALEXNET_KEY: ALEXNET_SOURCE}


__all__ = [
    "ALEXNET_KEY",
    "ALEXNET_SOURCE",
    "DISTRIBUTION",
    "INCEPTION_KEY",
    "INCEPTION_SOURCE",
    "LPIPS",
    "METRICS",
    "PAIRED",
    "InceptionV3Features",
    "Report",
    "Score",
    "evaluate",
    "fid",
    "inception_score",
    "kid",
    "known_weights",
    "parse_metrics",
    "precision_recall",
    "psnr",
    "ssim",
]
