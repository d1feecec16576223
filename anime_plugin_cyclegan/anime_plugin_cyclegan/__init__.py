"""anime-core plugin ``cyclegan``: unpaired photo <-> anime CycleGAN with U-Net + self-attention or
ResNet generators (Sharma & Das; the CycleGAN recipe of Begum et al. section 2.5).

Modules: ``generator`` (U-Net, ResNet; SAGAN block from ``anime_core.layers``), ``discriminator`` (70x70
PatchGAN), ``losses`` (eq. 2 and 4), ``pool`` (history of fakes), ``schedule`` (linear decay),
``data`` (paper 3.2 augmentation), ``task`` (training step), ``pipeline`` (``--direction``),
``plugin`` (the hooks), ``configs/`` (defaults and the paper's eight variants as presets).
"""
