"""anime-core plugin ``dcgan``: anime face generation and PixelSake's 4x image enhancer.

Models:
- ``dcgan`` (generate): the DCGAN recipe of Begum et al., "Anime face generating using deep
  learning", section 3.2, with PixelSake's extensions (Shrivastava et al., abstract and section 5):
  multi-scale discriminator, spectral normalisation, hinge / WGAN-GP losses, self-attention,
  VGG19 perceptual feature matching, 64/128/256 px, class-conditional generation.
- ``pixelsake-sr`` (translate): PixelSake's "Image enhancer" (section 4, Fig. 8), a GAN
  super-resolution network that up-samples 32x32 to 128x128.
"""
