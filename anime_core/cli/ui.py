"""``anime ui``: serve the local web app (extra ``anime-core[ui]``). Imports no gradio or torch until it runs."""

from __future__ import annotations

import ipaddress

import click

from anime_core.cli.common import warn_plugin_errors


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("ui", short_help="Open the local web app (Gradio): photo, video, generate, train, compare.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: 7860 or the next free one).")
@click.option(
    "--share",
    type=click.Choice(["off", "on"]),
    default="off",
    show_default=True,
    help="'on' also opens a public gradio.live link.",
)
def ui_command(host: str, port: int | None, share: str) -> None:
    """Serve the web app on http://HOST:PORT until Ctrl-C (needs: pip install "anime-core[ui]")."""
    from anime_core.ui import require_gradio, serve

    require_gradio()
    warn_plugin_errors()
    if share == "on" or not _loopback(host):
        # the Train tab reads and writes folders on this machine: say so before exposing it
        click.echo(
            "warning: anyone who can reach this app can run models and start training on this machine's folders",
            err=True,
        )
    serve(host, port, share == "on")
