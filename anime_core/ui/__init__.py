"""``anime ui``: a local web app (Gradio) over the registry, the pipelines and ``anime train``.

Tabs: Photo -> anime, Video, Generate, Train, Compare. Nothing here is model-specific: pickers
come from the registry and a model's own options from ``ModelSpec.run_options``
(:mod:`anime_core.ui.options`), so a plugin's models appear without UI code. Runs go through
``anime_core.load`` and the CLI's file runner (:mod:`anime_core.ui.actions`); training runs
``anime train`` as a subprocess (:mod:`anime_core.ui.training`). Gradio is the optional extra
``anime-core[ui]`` and is imported only by :func:`serve`.
"""

from __future__ import annotations

import importlib.util
import os

from anime_core.errors import UsageError

INSTALL_HINT = 'pip install "anime-core[ui]"'


def require_gradio() -> None:
    """Raise a one-line usage error (exit 2) naming the extra when gradio is not installed."""
    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):  # a broken or stubbed-out gradio
        found = False
    if not found:
        raise UsageError(f"the web app needs gradio, which is not installed; install it with: {INSTALL_HINT}")


def serve(host: str = "127.0.0.1", port: int | None = None, share: bool = False) -> None:
    """Build the app and serve it until Ctrl-C."""
    require_gradio()
    # a local app: no usage statistics sent anywhere, unless the user asked for them
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from anime_core.ui.app import build_app, launch
    except ImportError as exc:
        raise UsageError(f"gradio could not be imported ({exc}); reinstall it with: {INSTALL_HINT}") from None
    launch(build_app(), host, port, share)
