"""``anime ui``: a local web app (Gradio) over the registry, the pipelines and ``anime train``.

Tabs: Photo -> anime, Video, Webcam (live: :mod:`anime_core.ui.webcam`), Generate, Train, Compare.
Nothing here is model-specific: pickers come from the registry and a model's own options from ``ModelSpec.run_options``
(:mod:`anime_core.ui.options`), so a plugin's models appear without UI code. Runs go through
``anime_core.load`` and the CLI's file runner (:mod:`anime_core.ui.actions`); training runs
``anime train`` as a subprocess (:mod:`anime_core.ui.training`). Gradio is the optional extra
``anime-core[ui]`` and is imported only by :func:`serve`.

Bounds (:class:`~anime_core.ui.serving.ServeOptions`): uploads are refused above ``max_upload`` bytes while they stream
in (Gradio's ``max_file_size``), Size/Tile fields above the side of a ``max_pixels`` square and
Count above :data:`~anime_core.ui.actions.MAX_COUNT`, the Train tab reads only runs of its runs
folder, and an app reachable from other machines (``share`` or a non-loopback ``host``) must
have a user name and password (Gradio's ``auth``): :func:`~anime_core.ui.serving.check_exposure`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from anime_core.errors import UsageError
from anime_core.ui.serving import (  # noqa: F401 (what ``anime ui`` and tests import from here)
    AUTH_ENV,
    DEFAULT_MAX_UPLOAD,
    ServeOptions,
    check_exposure,
    exposed,
    loopback,
    parse_auth,
)

INSTALL_HINT = 'pip install "anime-core[ui]"'
GRADIO_TEMP_ENV = "GRADIO_TEMP_DIR"


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
    with gradio_temp_dir():  # before gradio is imported: some of its modules read the folder then
        try:
            from anime_core.ui import training
            from anime_core.ui.app import build_app, launch
        except ImportError as exc:
            raise UsageError(f"gradio could not be imported ({exc}); reinstall it with: {INSTALL_HINT}") from None
        launch(build_app(job=training.TrainJob(options.runs), max_pixels=options.max_pixels), options)


@contextlib.contextmanager
def gradio_temp_dir() -> Iterator[Path]:
    """A temp folder of this server's own for Gradio's uploads and result copies, removed when it stops.

    Gradio keeps what it receives and serves under ``GRADIO_TEMP_DIR`` (default ``$TMPDIR/gradio``,
    shared and never emptied); its ``delete_cache`` removes only the files it tracked, and leaves the
    folders. The variable is set here, before gradio is imported (some of its modules read it then),
    to a new folder inside the one it names, and restored afterwards.
    """
    saved = os.environ.get(GRADIO_TEMP_ENV)
    if saved:
        Path(saved).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="anime-ui-", dir=saved or None))
    os.environ[GRADIO_TEMP_ENV] = str(folder)
    try:
        yield folder
    finally:
        if saved is None:
            os.environ.pop(GRADIO_TEMP_ENV, None)
        else:
            os.environ[GRADIO_TEMP_ENV] = saved
        shutil.rmtree(folder, ignore_errors=True)
