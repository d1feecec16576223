"""Shared fixtures: generated images, the tiny test plugin, an isolated weights cache."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_image, subprocess_env, write_images  # noqa: F401  (re-exported for tests)

TESTS = Path(__file__).parent
TINY_SRC = TESTS / "tiny_plugin"
REPO = TESTS.parent

if str(TINY_SRC) not in sys.path:
    sys.path.insert(0, str(TINY_SRC))

# The tests use tiny tensors, where thread start-up costs more than it saves; on a loaded
# 2-core machine two threads per op made training tests 10x slower (measured by the AnimeGAN
# plugin's tests: 320 s -> 20 s).
torch.set_num_threads(1)

# The Ctrl-C tests send SIGINT to the commands they start. A suite started in the background by a
# non-interactive shell (`make test &`, nohup, some CI runners) inherits SIGINT ignored, and an ignored
# signal stays ignored in every child: the commands would finish instead of stopping. A handler (unlike
# SIG_IGN) is reset to the default in a child, so the children get the Ctrl-C a user's terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty weights cache and never hits the network."""
    home = tmp_path_factory.mktemp("anime_home")
    monkeypatch.setenv("ANIME_HOME", str(home))
    monkeypatch.setenv("ANIME_OFFLINE", "1")
    # exact outputs: the tests compare with torch's fp32 (and across processes); --precision auto, whose pick
    # depends on the CPU (bf16 on OpenVINO where it is native), is tested where it is asked for
    # (tests/core/test_precision.py clears this)
    monkeypatch.setenv("ANIME_PRECISION", "fp32")
    yield home


@pytest.fixture
def tiny_registry():
    """The process registry with only the core and the tiny test plugin."""
    import tiny_anime_plugin

    from anime_core.registry import load_registry, set_registry

    reg = load_registry(extra=[("tiny", tiny_anime_plugin)], entry_points=False, strict=True)
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def registry():
    """The process registry built from the installed plugins' entry points (reset afterwards)."""
    from anime_core.registry import load_registry, set_registry

    reg = load_registry()
    assert not reg.load_errors, reg.load_errors
    set_registry(reg)
    yield reg
    set_registry(None)


@pytest.fixture
def tiny_site(tmp_path) -> Path:
    """A site folder where the tiny plugin is *installed*: package + dist-info with a real entry point."""
    site = tmp_path / "site"
    shutil.copytree(TINY_SRC / "tiny_anime_plugin", site / "tiny_anime_plugin")
    info = site / "tiny_anime_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-anime-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[anime.plugins]\ntiny = tiny_anime_plugin\n")
    return site
