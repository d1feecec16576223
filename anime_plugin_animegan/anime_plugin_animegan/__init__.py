"""anime-core plugin: AnimeGAN (Liu, Chen & Hu) with the AnimeGANv2 generator and its pretrained styles."""
