"""Evaluation metrics for ``anime eval``: FID, KID, IS, precision/recall, PSNR, SSIM, LPIPS.

``evaluate(real_dir, fake_dir, "fid,kid,psnr")`` returns a :class:`Report`; the feature-level
functions (``fid``, ``kid``, ``inception_score``, ``precision_recall``) and the paired ones
(``psnr``, ``ssim``, ``LPIPS``) are usable on their own. Pretrained weights (Inception-v3,
AlexNet) go through the core's verified cache and are listed by ``anime weights list``.

Importing this package is light (the CLI's help lists the metric names); the functions import
torch on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

DISTRIBUTION = ("fid", "kid", "is", "prc")  # compare two folders as sets of images
PAIRED = ("psnr", "ssim", "lpips")  # compare files matched by name
METRICS = DISTRIBUTION + PAIRED

_LAZY = {
    "fid": "distribution", "inception_score": "distribution", "kid": "distribution", "precision_recall": "distribution",
    "Report": "scoring", "Score": "scoring", "evaluate": "scoring", "parse_metrics": "scoring",
    "INCEPTION_KEY": "inception", "INCEPTION_SOURCE": "inception", "InceptionV3Features": "inception",
    "ALEXNET_KEY": "paired", "ALEXNET_SOURCE": "paired", "LPIPS": "paired", "psnr": "paired", "ssim": "paired",
}

__all__ = ["DISTRIBUTION", "METRICS", "PAIRED", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"anime_core.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'anime_core.metrics' has no attribute '{name}'")
