"""Discriminator of ``pixelsake-sr``: the DCGAN discriminator (:mod:`anime_plugin_dcgan.discriminator`)
on the high-resolution crops (128 px).

Shrivastava et al., "PixelSake: Deep Convolution Generative Adversarial Network", section 4, name
a GAN-based 4x up-sampler but no discriminator for it, so the enhancer reuses the plugin's own;
its options are the ``discriminator:`` section of ``configs/sr.yaml``.
"""

from __future__ import annotations

from anime_plugin_dcgan.discriminator import build_discriminator

__all__ = ["build_discriminator"]
