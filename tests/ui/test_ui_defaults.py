"""The web app opens on the model's declared default style and leaves no files behind (issue 24 item 10)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import make_image, subprocess_env

from anime_core.ui import actions, gradio_temp_dir

WAIT = 120  # seconds for a loaded 2-core machine to import gradio and answer


def test_animegan_opens_on_its_declared_default_not_the_first_face_style(registry):
    assert sorted(registry.styles_of("animegan"))[0] == "celeba_distill"  # what the picker opened on before
    assert registry.models["animegan"].default_style == "paprika"
    assert actions.default_style("animegan") == "paprika"


def test_without_a_declared_default_the_cached_or_first_style_is_picked(tiny_registry, monkeypatch):
    import dataclasses

    assert tiny_registry.models["tiny"].default_style == ""
    assert actions.default_style("tiny") == "demo"
    # a declared default that names no style of the model is ignored, not shown as an empty picker
    monkeypatch.setitem(tiny_registry.models, "tiny", dataclasses.replace(tiny_registry.models["tiny"],
                                                                        default_style="gone"))
    assert actions.default_style("tiny") == "demo"


@pytest.mark.slow  # gradio's import: ~6 s
def test_the_built_page_opens_on_paprika(registry, tmp_path):
    pytest.importorskip("gradio")
    from anime_core.ui import training
    from anime_core.ui.app import build_app

    app = build_app(actions.Workspace(tmp_path / "ws"), training.TrainJob(tmp_path / "runs"))
    pickers = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}
    assert pickers["photo-style"].value == "paprika"
    assert pickers["video-style"].value == "paprika"


def test_the_temp_folder_is_the_servers_own_and_is_removed(tmp_path, monkeypatch):
    base = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(base))
    with gradio_temp_dir() as folder:
        assert os.environ["GRADIO_TEMP_DIR"] == str(folder) and folder.parent == base
        (folder / "upload" / "abc").mkdir(parents=True)
        (folder / "upload" / "abc" / "photo.png").write_bytes(b"x")
    assert not folder.exists() and list(base.iterdir()) == []
    assert os.environ["GRADIO_TEMP_DIR"] == str(base)
    monkeypatch.delenv("GRADIO_TEMP_DIR")
    with gradio_temp_dir() as folder:
        assert folder.is_dir()
    assert not folder.exists() and "GRADIO_TEMP_DIR" not in os.environ


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # anime ui in a subprocess: gradio's import and a served app, ~15 s on a loaded machine
def test_a_stopped_server_leaves_nothing_in_gradios_temp_folder(tmp_path):
    pytest.importorskip("gradio")
    httpx = pytest.importorskip("httpx")
    base, port = tmp_path / "gradio", _free_port()
    log = (tmp_path / "ui.log").open("w")
    env = subprocess_env(ANIME_HOME=str(tmp_path / "home"), ANIME_OFFLINE="1", GRADIO_TEMP_DIR=str(base))
    proc = subprocess.Popen([sys.executable, "-m", "anime_core.cli", "ui", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_until_served(proc, port, tmp_path / "ui.log")
        photo = tmp_path / "photo.png"
        make_image((32, 24), 0).save(photo)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            got = client.post("/gradio_api/upload", files={"files": ("photo.png", photo.read_bytes())})
        assert got.status_code == 200, got.text
        [kept] = got.json()
        assert Path(kept).is_file() and Path(kept).is_relative_to(base)  # in the server's own folder
        proc.send_signal(signal.SIGTERM)  # a service manager's stop: closes like Ctrl-C
        assert proc.wait(timeout=WAIT) in (0, 1, 130), (tmp_path / "ui.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(base.iterdir()) == [], list(base.rglob("*"))
    assert "Traceback" not in (tmp_path / "ui.log").read_text()


def _wait_until_served(proc: subprocess.Popen, port: int, log: Path) -> None:
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"anime ui exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"anime ui did not answer within {WAIT} s: {log.read_text()}")
