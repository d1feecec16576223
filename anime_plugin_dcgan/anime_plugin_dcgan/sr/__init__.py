"""``pixelsake-sr``, the 4x image enhancer of Shrivastava et al., "PixelSake: Deep Convolution
Generative Adversarial Network" (section 4, Fig. 8), laid out like a plugin of its own so each
role is found in one guess: ``generator.py``, ``discriminator.py``, ``data.py`` (the ``sr_pairs``
dataset kind), ``task.py``, ``config.py``; its defaults are ``../configs/sr.yaml`` and its
pipeline is ``anime_plugin_dcgan.pipeline:SRPipeline``.
"""

from anime_plugin_dcgan.sr.generator import SRGenerator

__all__ = ["SRGenerator"]
