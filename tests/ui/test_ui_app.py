"""The app's page is built from the registry (a plugin's model and options appear with no UI code), and the
``anime ui`` command answers without gradio."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from helpers import subprocess_env

from anime_core import hookimpl
from anime_core.specs import ModelSpec


class _GlowPlugin:
    """A third party's model with an option of its own; it ships no UI code."""

    @hookimpl
    def anime_register_models(self):  # type: ignore[no-untyped-def]
        radius = click.Option(["--glow-radius"], type=click.IntRange(1, 9), default=3, help="Bloom radius.")
        return [ModelSpec("glow", "translate", "tiny.g", description="third-party test model", run_options=(radius,))]


@pytest.mark.slow  # importing gradio and building its FastAPI app: ~6 s on an idle machine
def test_the_page_lists_what_plugins_register(tiny_registry, tmp_path):
    pytest.importorskip("gradio")
    import tiny_anime_plugin

    from anime_core.registry import load_registry, set_registry
    from anime_core.ui import actions, training
    from anime_core.ui.app import build_app

    set_registry(load_registry(extra=[("tiny", tiny_anime_plugin), ("glow", _GlowPlugin())], entry_points=False))
    app = build_app(actions.Workspace(tmp_path / "ws"), training.TrainJob())
    blocks = {getattr(b, "elem_id", None): b for b in app.blocks.values()}
    assert [v for _, v in blocks["photo-model"].choices] == ["glow", "tiny"]
    assert [v for _, v in blocks["generate-model"].choices] == ["tinygen"]
    assert [v for _, v in blocks["train-model"].choices] == ["tiny", "tinygen"]  # glow has no training task
    assert [v for _, v in blocks["compare-styles"].choices] == ["tiny:demo"]
    radius = [b for b in app.blocks.values() if getattr(b, "label", None) == "glow radius"]
    assert len(radius) == 3  # on the Photo, Video and Webcam tabs, as a bounded number box
    assert (radius[0].minimum, radius[0].maximum, radius[0].value) == (1, 9, 3)


_PROBE = """
import contextlib, io, json, sys
if sys.argv[1] == "hide-gradio":
    sys.modules["gradio"] = None  # as if it were not installed
from anime_core.cli import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    try:
        main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
heavy = [m for m in ("torch", "gradio") if sys.modules.get(m) is not None]
print(json.dumps({"code": code, "heavy": heavy, "err": err.getvalue()}))
"""


def _probe(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_ui_help_imports_neither_gradio_nor_torch():
    data = _probe("-", "ui", "--help")
    assert data["code"] == 0 and data["heavy"] == []


def test_without_gradio_one_line_names_the_extra():
    data = _probe("hide-gradio", "ui", "--port", "7999")
    assert data["code"] == 2 and data["heavy"] == []
    assert data["err"].count("\n") == 1 and 'pip install "anime-core[ui]"' in data["err"], data["err"]


def test_only_loopback_hosts_count_as_local():
    from anime_core.cli.ui import _loopback

    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost")
    assert not _loopback("0.0.0.0") and not _loopback("192.168.1.5") and not _loopback("example.org")
