"""Weights: the native safetensors format, foreign checkpoints, and the verified download cache."""

from anime_core.weights.files import LoadedWeights, load_weights, read_state, save_native
from anime_core.weights.store import (
    anime_home,
    cached_path,
    fetch,
    fetch_style,
    file_digests,
    import_file,
    verify_file,
)

__all__ = [
    "LoadedWeights",
    "anime_home",
    "cached_path",
    "fetch",
    "fetch_style",
    "file_digests",
    "import_file",
    "load_weights",
    "read_state",
    "save_native",
    "verify_file",
]
