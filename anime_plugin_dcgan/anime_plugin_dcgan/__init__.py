"""anime-core plugin ``dcgan``: anime face generation and PixelSake's 4x image enhancer.

Models:
- ``dcgan`` (generate): the DCGAN recipe of Begum et al., "Anime face generating using deep
  learning", section 3.2, with the extensions of Shrivastava et al., "PixelSake: Deep Convolution
  Generative Adversarial Network" (abstract, sections 5 and 6): multi-scale discriminator, spectral
  normalisation, hinge / WGAN-GP losses, self-attention, VGG19 perceptual feature matching,
  64/128/256 px, class-conditional generation. Files: ``generator.py``, ``discriminator.py``,
  ``losses.py``, ``task.py``, ``config.py``, ``configs/default.yaml``.
- ``pixelsake-sr`` (translate): PixelSake's "Image enhancer" (section 4, Fig. 8), a GAN
  super-resolution network that up-samples 32x32 to 128x128. Files: the subpackage ``sr/``.
"""
