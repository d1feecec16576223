"""anime-core: a plugin-based model registry for anime image synthesis.

See ``anime_core.api`` for the public functions re-exported here, ``anime_core.hookspecs`` for
the plugin hooks, and ``anime_core.specs`` for what plugins register. Importing this package is
light (no torch): a plugin's entry-point module does ``from anime_core import hookimpl``, and
``build``/``load``/``list_models`` import what they need on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anime_core.errors import AnimeError
from anime_core.hookspecs import hookimpl
from anime_core.registry import get_registry

if TYPE_CHECKING:
    from anime_core.api import build, list_models, load
    from anime_core.runner.call import run

__version__ = "0.1.0"

__all__ = ["AnimeError", "__version__", "build", "get_registry", "hookimpl", "list_models", "load", "run"]

_API = {"build", "list_models", "load"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from anime_core import api

        return getattr(api, name)
    if name == "run":  # the runner of 'anime run' (files, folders, globs, videos) as a call
        from anime_core.runner.call import run

        return run
    raise AttributeError(f"module 'anime_core' has no attribute '{name}'")
