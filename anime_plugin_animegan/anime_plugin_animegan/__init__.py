"""anime-core plugin for animegan (being written)."""
