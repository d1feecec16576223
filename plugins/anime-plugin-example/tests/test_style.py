"""The ``animegan:example`` style: its published sha256 is the placeholder file's, it downloads
(from a local server standing in for the placeholder URL), verifies, imports and converts."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading

import pytest
import torch
from anime_example_plugin import styles
from anime_example_plugin.placeholder import write_placeholder
from PIL import Image

import anime_core
from anime_core.errors import WeightsUnavailable
from anime_core.registry import load_registry, set_registry
from anime_core.weights import cached_path, fetch, file_digests, import_file


@pytest.fixture
def registry():
    reg = load_registry(entry_points=True, strict=False)
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server serving the placeholder file under the style's file name."""
    root = tmp_path / "www"
    write_placeholder(root / styles.FILE_NAME)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_published_hash_is_the_placeholder_files(tmp_path):
    path = write_placeholder(tmp_path / "w.safetensors")
    assert file_digests(path)["sha256"] == styles.SHA256


def test_style_is_registered_for_animegan(registry):
    style = registry.style("animegan", "example")
    assert style.plugin == "example" and style.source.layout == "animegan.v2-pytorch"
    assert style.source.url.startswith("https://example.com/")  # the documented placeholder


def test_download_verifies_and_the_style_runs(registry, server, monkeypatch):
    monkeypatch.delenv("ANIME_OFFLINE", raising=False)
    style = registry.style("animegan", "example")
    local = dataclasses.replace(style.source, url=f"{server}/{styles.FILE_NAME}")
    path = fetch(style.key, local, progress=False)
    assert path == cached_path(style.key, style.source)
    pipe = anime_core.load("animegan", style="example", device="cpu")  # cached now: no network
    assert pipe.defaults == {"size": 384, "center_crop": False}
    image = Image.new("RGB", (40, 24), (200, 120, 30))
    assert pipe(image).size == (384, 230)  # the style's preprocess default: long side 384
    assert pipe(image, size=40).size == (40, 24)


def test_tampered_download_is_rejected(registry, server, monkeypatch):
    monkeypatch.delenv("ANIME_OFFLINE", raising=False)
    style = registry.style("animegan", "example")
    bad = dataclasses.replace(style.source, url=f"{server}/{styles.FILE_NAME}", sha256="0" * 64)
    with pytest.raises(WeightsUnavailable, match="does not match its published"):
        fetch(style.key, bad, progress=False)
    assert not cached_path(style.key, bad).exists()


def test_offline_import_installs_the_file(registry, tmp_path):
    style = registry.style("animegan", "example")
    with pytest.raises(WeightsUnavailable, match="anime weights import animegan:example"):
        fetch(style.key, style.source, progress=False)
    installed = import_file(style.key, style.source, write_placeholder(tmp_path / "w.safetensors"))
    loaded = anime_core.load("animegan", style="example", device="cpu")
    assert installed.exists() and isinstance(loaded.generator, torch.nn.Module)
