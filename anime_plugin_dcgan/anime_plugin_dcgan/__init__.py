"""anime-core plugin for dcgan (being written)."""
