"""anime-core plugin for ae (being written)."""
