"""Inference: image decoding and writing (``io``), padding and tiling, the run-mode hook (``modes``)
and the pipelines returned by ``anime_core.load`` (``pipeline``, which imports torch: loaded on first use).
"""

from __future__ import annotations

from typing import Any

__all__ = ["GeneratePipeline", "Pipeline", "TranslatePipeline"]


def __getattr__(name: str) -> Any:
    # the pipelines import torch; importing anime_core.inference.io (light) must not
    if name in __all__:
        from anime_core.inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'anime_core.inference' has no attribute '{name}'")
