"""anime-core plugin: AnimeGAN (G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation")
with the AnimeGANv2 generator and its pretrained styles."""
