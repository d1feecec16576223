"""``anime ui``: serve the local web app (extra ``anime-core[ui]``). Imports no gradio or torch until it runs."""

from __future__ import annotations

from pathlib import Path

import click

from anime_core.budget import DEFAULT_MAX_PIXELS, fmt_bytes, parse_bytes
from anime_core.cli.common import warn_plugin_errors
from anime_core.errors import UsageError
from anime_core.ui import AUTH_ENV, DEFAULT_MAX_UPLOAD, ServeOptions, check_exposure, exposed, loopback, parse_auth

_loopback = loopback  # the name tests and older callers use


class _Size(click.ParamType):
    """A byte count: ``200M``, ``1G``, ``500000``."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_bytes(str(value))
        except UsageError:
            self.fail(f"{value!r} is not a size; give bytes or a number with K, M or G (e.g. 500M)", param, ctx)


@click.command("ui", short_help="Open the local web app (Gradio): photo, video, generate, train, compare.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: 7860 or the next free one).")
@click.option(
    "--share",
    type=click.Choice(["off", "on"]),
    default="off",
    show_default=True,
    help="'on' also opens a public gradio.live link (needs --auth).",
)
@click.option(
    "--auth",
    envvar=AUTH_ENV,
    metavar="USER:PASSWORD",
    help=f"Ask for this user name and password (Gradio's login page). Required with --share on or a --host other "
    f"than loopback. {AUTH_ENV} keeps the password off the command line.",
)
@click.option(
    "--max-upload",
    type=_Size(),
    default=DEFAULT_MAX_UPLOAD,
    help=f"Refuse an uploaded file above this size while it streams in (e.g. 1G) [default: "
    f"{fmt_bytes(DEFAULT_MAX_UPLOAD)}].",
)
@click.option(
    "--runs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="The Train tab's runs folder: new runs go here, and only runs here can be viewed or resumed.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(64),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse larger images and Size/Tile fields whose square is larger (as anime run --max-pixels).",
)
def ui_command(
    host: str, port: int | None, share: str, auth: str | None, max_upload: int, runs: Path, max_pixels: int
) -> None:
    """Serve the web app on http://HOST:PORT until Ctrl-C (needs: pip install "anime-core[ui]")."""
    from anime_core.ui import require_gradio, serve

    options = ServeOptions(
        host=host, port=port, share=share == "on", auth=parse_auth(auth) if auth else None,
        max_upload=max_upload, runs=runs, max_pixels=max_pixels,
    )
    check_exposure(options)  # before importing gradio: a refusal costs nothing
    require_gradio()
    warn_plugin_errors()
    if exposed(options):
        click.echo(
            "warning: whoever has the password can run models and start training on this machine's folders",
            err=True,
        )
    serve(options)
