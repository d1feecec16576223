"""anime-core: a plugin-based model registry for anime image synthesis.

See ``anime_core.api`` for the public functions re-exported here, ``anime_core.hookspecs`` for
the plugin hooks, and ``anime_core.specs`` for what plugins register.
"""

from anime_core.api import build, list_models, load
from anime_core.errors import AnimeError
from anime_core.hookspecs import hookimpl
from anime_core.registry import get_registry

__version__ = "0.1.0"

__all__ = ["AnimeError", "__version__", "build", "get_registry", "hookimpl", "list_models", "load"]
