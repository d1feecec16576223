"""Weights: the native safetensors format, foreign checkpoints, and the verified download cache.

Names are imported on first use, so the cache and catalog (``anime weights list``) work without
importing torch; :mod:`anime_core.weights.files` is the part that needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "LoadedWeights": "files",
    "check_options": "files",
    "load_weights": "files",
    "read_state": "files",
    "save_native": "files",
    "anime_home": "store",
    "cache_status": "store",
    "cached_path": "store",
    "fetch": "store",
    "fetch_style": "store",
    "file_digests": "store",
    "import_file": "store",
    "verify_file": "store",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'anime_core.weights' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"anime_core.weights.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
