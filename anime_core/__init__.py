"""anime-core: a plugin-based model registry for anime image synthesis.

See ``anime_core.api`` for the public functions re-exported here, ``anime_core.hookspecs`` for
the plugin hooks, and ``anime_core.specs`` for what plugins register. Importing this package is
light (no torch): a plugin's entry-point module does ``from anime_core import hookimpl``, and
``build``/``load``/``list_models`` import what they need on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anime_core.errors import AnimeError, UsageError, WeightsUnavailable
from anime_core.hookspecs import hookimpl
from anime_core.registry import get_registry

if TYPE_CHECKING:
    from anime_core.api import build, list_models, load
    from anime_core.runner.call import run

__version__ = "0.1.0"

#: the public API: ``from anime_core import *`` and ``dir(anime_core)`` show these. ``build``, ``list_models`` and
#: ``load`` live in :mod:`anime_core.api`, ``run`` (the runner of ``anime run``, for files, folders, globs and
#: videos) in :mod:`anime_core.runner.call`; they are imported on first use, so ``import anime_core`` stays light.
__all__ = ["AnimeError", "UsageError", "WeightsUnavailable", "__version__", "build", "get_registry", "hookimpl",
           "list_models", "load", "run"]

_API = {"build": "anime_core.api", "list_models": "anime_core.api", "load": "anime_core.api",
        "run": "anime_core.runner.call"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'anime_core' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
