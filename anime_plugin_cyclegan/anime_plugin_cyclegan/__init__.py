"""anime-core plugin ``cyclegan``: unpaired photo <-> anime CycleGAN with U-Net + self-attention or
ResNet generators (Sharma & Das, "A CycleGAN Framework for Anime Style Image Synthesis based on
U-Net and Self-Attention"; the CycleGAN recipe as Begum et al., "Anime face generating using deep
learning", section 2.5 reviews it).

Modules: ``generator`` (U-Net, ResNet; SAGAN block from ``anime_core.layers``), ``discriminator`` (70x70
PatchGAN), ``losses`` (eq. 2 and 4), ``pool`` (history of fakes), ``data`` (section 3.2
augmentation), ``config`` (the typed config), ``task`` (training step), ``pipeline``
(``--direction``), ``options`` (its click option), ``plugin`` (the hooks), ``configs/`` (defaults
and the paper's eight variants as presets).
"""
