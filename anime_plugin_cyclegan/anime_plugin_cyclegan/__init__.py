"""anime-core plugin for cyclegan (being written)."""
