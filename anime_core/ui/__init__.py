"""``anime ui``: a local web app (Gradio) over the registry, the pipelines and ``anime train``.

Tabs: Photo -> anime, Video, Webcam (live: :mod:`anime_core.ui.webcam`), Generate, Train, Compare.
Nothing here is model-specific: pickers come from the registry and a model's own options from ``ModelSpec.run_options``
(:mod:`anime_core.ui.options`), so a plugin's models appear without UI code. Runs go through
``anime_core.load`` and the CLI's file runner (:mod:`anime_core.ui.actions`); training runs
``anime train`` as a subprocess (:mod:`anime_core.ui.training`). Gradio is the optional extra
``anime-core[ui]`` and is imported only by :func:`serve`.

Bounds (:class:`ServeOptions`): uploads are refused above ``max_upload`` bytes while they stream
in (Gradio's ``max_file_size``), Size/Tile fields above the side of a ``max_pixels`` square and
Count above :data:`~anime_core.ui.actions.MAX_COUNT`, the Train tab reads only runs of its runs
folder, and an app reachable from other machines (``share`` or a non-loopback ``host``) must
have a user name and password (Gradio's ``auth``): :func:`check_exposure`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from anime_core.budget import DEFAULT_MAX_PIXELS
from anime_core.errors import UsageError

INSTALL_HINT = 'pip install "anime-core[ui]"'
DEFAULT_MAX_UPLOAD = 200 << 20  # a weights file or a video clip; ``anime ui --max-upload`` raises it
AUTH_ENV = "ANIME_UI_AUTH"


@dataclass(frozen=True)
class ServeOptions:
    """How ``anime ui`` serves the app: where, to whom, and its limits."""

    host: str = "127.0.0.1"
    port: int | None = None
    share: bool = False
    auth: tuple[str, str] | None = None  #: user name and password asked by Gradio's login page
    max_upload: int = DEFAULT_MAX_UPLOAD  #: bytes per uploaded file, refused while it streams in
    runs: Path = Path("runs")  #: the Train tab's runs folder
    max_pixels: int = DEFAULT_MAX_PIXELS


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposed(options: ServeOptions) -> bool:
    """Whether other machines can reach the app (a public link, or an address other than loopback)."""
    return options.share or not loopback(options.host)


def check_exposure(options: ServeOptions) -> None:
    """Refuse an app other machines can reach without a user name and password."""
    if exposed(options) and options.auth is None:
        where = "--share on" if options.share else f"--host {options.host}"
        raise UsageError(
            f"{where} lets other machines run models and train on this machine's folders, so it needs "
            f"--auth USER:PASSWORD (or {AUTH_ENV}=USER:PASSWORD); without them the app listens on 127.0.0.1 only"
        )


def parse_auth(text: str) -> tuple[str, str]:
    """``USER:PASSWORD`` -> ``(user, password)``, a usage error naming the form otherwise."""
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise UsageError(f"--auth / {AUTH_ENV} must be USER:PASSWORD with neither part empty")
    return user.strip(), password


def require_gradio() -> None:
    """Raise a one-line usage error (exit 2) naming the extra when gradio is not installed."""
    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):  # a broken or stubbed-out gradio
        found = False
    if not found:
        raise UsageError(f"the web app needs gradio, which is not installed; install it with: {INSTALL_HINT}")


def serve(options: ServeOptions | None = None) -> None:
    """Build the app and serve it until Ctrl-C."""
    options = options or ServeOptions()
    check_exposure(options)
    require_gradio()
    # a local app: no usage statistics sent anywhere, unless the user asked for them
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        from anime_core.ui import training
        from anime_core.ui.app import build_app, launch
    except ImportError as exc:
        raise UsageError(f"gradio could not be imported ({exc}); reinstall it with: {INSTALL_HINT}") from None
    launch(build_app(job=training.TrainJob(options.runs), max_pixels=options.max_pixels), options)
