"""Pretrained styles of ``dcgan`` and ``pixelsake-sr``: none yet.

Neither Begum et al., "Anime face generating using deep learning", nor Shrivastava et al.,
"PixelSake: Deep Convolution Generative Adversarial Network", publish weights; train with
``anime train dcgan`` and run with ``--weights``. Pure data, like every plugin's ``styles.py``.
"""

from __future__ import annotations

from anime_core.specs import StyleSpec


def styles() -> list[StyleSpec]:
    """The plugin's pretrained styles (registered by ``anime_register_styles``): none."""
    return []
