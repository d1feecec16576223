"""How ``anime ui`` serves the app (:class:`ServeOptions`), and the refusal of an exposed app without a password.

Without gradio: ``anime ui --help`` and its checks import this module only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from anime_core.budget import DEFAULT_MAX_PIXELS
from anime_core.errors import UsageError

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
