"""The Gradio app of ``anime ui``: six tabs over the registry, the pipelines and ``anime train``.

Built for Gradio 6 (theme and CSS are passed to ``launch``). Everything shown comes from the
registry, so the tabs list whatever models and styles the installed plugins register.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from types import FrameType
from typing import Any

import gradio as gr
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from anime_core import __version__
from anime_core.budget import DEFAULT_MAX_PIXELS
from anime_core.ui import actions, training
from anime_core.ui.serving import ServeOptions, check_exposure
from anime_core.ui.tabs import Settings, compare_tab, generate_tab, photo_tab, video_tab
from anime_core.ui.train_tab import train_tab
from anime_core.ui.webcam import webcam_tab

#: room for a request's form fields and multipart framing above the one file it may carry
BODY_SLACK = 1 << 20

CSS = """
#photo-status, #video-status, #webcam-fps, #generate-status, #compare-status, #train-status { min-height: 1.5em; }
"""


def build_app(
    workspace: actions.Workspace | None = None,
    job: training.TrainJob | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> gr.Blocks:
    """The app's page (not started); ``workspace`` holds its outputs, ``job`` runs its training in its runs folder."""
    workspace = workspace or actions.Workspace()
    job = job or training.TrainJob()
    # uploads and results of a local app are the user's photos: gradio deletes its copies after an hour
    with gr.Blocks(title="anime-core", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        with gr.Row(equal_height=True):
            gr.Markdown(
                f"## anime-core {__version__}\nPhotos to anime, anime faces from noise, and training on your "
                f"own folders. Models and styles come from the installed plugins (`anime list`).",
                elem_id="title",
            )
            settings = Settings(max_pixels)
        with gr.Tabs():
            with gr.Tab("Photo → anime", id="photo"):
                photo_tab(settings, workspace)
            with gr.Tab("Video", id="video"):
                video_tab(settings, workspace)
            with gr.Tab("Webcam", id="webcam"):
                webcam_tab(settings, workspace)
            with gr.Tab("Generate", id="generate"):
                generate_tab(settings, workspace)
            with gr.Tab("Train", id="train"):
                train_tab(job)
            with gr.Tab("Compare", id="compare"):
                compare_tab(settings, workspace)
    app.workspace = workspace  # type: ignore[attr-defined]  # for launch's allowed paths
    return app


def start(app: gr.Blocks, options: ServeOptions) -> tuple[str, str | None]:
    """Start serving ``app`` in the background with ``options``' bounds: (local URL, public URL or ``None``)."""
    check_exposure(options)
    workspace: actions.Workspace = app.workspace  # type: ignore[attr-defined]
    _, local, public = app.queue(default_concurrency_limit=1).launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth,
        auth_message="anime-core: the user name and password given to anime ui --auth",
        max_file_size=options.max_upload,  # checked while the upload streams in: 413, nothing kept
        # every other body too (a JSON request may carry a file as a data: URL): refused past the same size
        app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=options.max_upload + BODY_SLACK)]},
        inbrowser=False,
        show_error=True,
        quiet=True,  # gradio's own banner tells users to edit launch(); ours names the URL
        prevent_thread_lock=True,
        allowed_paths=[str(workspace.root)],
        theme=gr.themes.Default(primary_hue="pink"),
        css=CSS,
        footer_links=[],
    )
    return local, public


def launch(app: gr.Blocks, options: ServeOptions) -> None:
    """Serve ``app`` until Ctrl-C, printing where."""
    workspace: actions.Workspace = app.workspace  # type: ignore[attr-defined]
    local, public = start(app, options)
    print(f"anime ui: open {local} in a browser (Ctrl-C stops)", file=sys.stderr, flush=True)
    if public:
        print(f"anime ui: public link {public}", file=sys.stderr, flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: close like Ctrl-C, cleaning up
    try:
        app.block_thread()  # returns on Ctrl-C, after closing the server
    finally:
        shutil.rmtree(workspace.root, ignore_errors=True)  # the outputs were served; downloads are the user's copy


class _TooLarge(HTTPException):
    """Raised by the body reader; FastAPI passes HTTP exceptions on as they are (413), where others become 400."""


class BodyLimit:
    """ASGI middleware: a request body above ``max_bytes`` is answered 413 (by its Content-Length, or as it streams)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes
        self._message = f"request body above {max_bytes} bytes; anime ui --max-upload sets the limit"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen, started = 0, False

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge(413, self._message)
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = self._message.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
