"""The web app's actions (no browser): they run models exactly as ``anime run`` and ``anime_core.load`` do."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import os
import threading

import numpy as np
import pytest
from helpers import make_image
from PIL import Image

import anime_core
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.ui import actions
from anime_core.ui.actions import Weights


@pytest.fixture
def tiny_weights(tiny_registry, tmp_path):
    from anime_core.weights.files import save_native

    path = tmp_path / "tiny.safetensors"
    save_native(path, {"generator": anime_core.build("tiny", "generator")}, "tiny")
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    make_image((40, 28), seed=3).save(path)
    return path


def test_translate_writes_what_the_pipeline_computes(tiny_weights, photo, tmp_path):
    ws = actions.Workspace(tmp_path / "out")
    result = actions.translate(str(photo), Weights("tiny", file=str(tiny_weights)), workspace=ws)
    [out] = result.files
    assert out.parent.parent == ws.root and out.name == "photo-tiny-tiny_safetensors.png"
    expected = anime_core.load("tiny", weights=tiny_weights)(Image.open(photo))
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    assert Image.open(result.shown).size == (40, 28)  # the slider's "before": the input as the model saw it
    again = actions.translate(str(photo), Weights("tiny", file=str(tiny_weights)), size=20, workspace=ws)
    assert again.files[0] != out and Image.open(again.files[0]).size == (20, 14)  # --size: long side


def test_translate_refuses_with_one_sentence(tiny_weights, photo, tmp_path):
    weights = Weights("tiny", file=str(tiny_weights))
    with pytest.raises(UsageError, match="upload a photo first"):
        actions.translate(None, weights)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    with pytest.raises(UsageError, match="not an image Pillow can read"):
        actions.translate(str(junk), weights, workspace=actions.Workspace(tmp_path / "o"))
    with pytest.raises(UsageError, match="use the Generate tab"):
        actions.translate(str(photo), Weights("tinygen", file=str(tiny_weights)))
    with pytest.raises(UsageError, match="size must be a whole number from 8 to 10000 px"):
        actions.translate(str(photo), weights, size=4)


def test_generate_is_seeded(tiny_registry, tmp_path):
    from anime_core.weights.files import save_native

    path = save_native(tmp_path / "gen.safetensors", {"generator": anime_core.build("tinygen")}, "tinygen")
    ws = actions.Workspace(tmp_path / "out")
    a = actions.generate(Weights("tinygen", file=str(path)), num=4.0, seed=3, workspace=ws).files[0]
    b = actions.generate(Weights("tinygen", file=str(path)), num=4, seed=3, workspace=ws).files[0]
    c = actions.generate(Weights("tinygen", file=str(path)), num=4, seed=4, workspace=ws).files[0]
    pixels = [np.asarray(Image.open(p)) for p in (a, b, c)]
    assert a != b and np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
    expected = anime_core.load("tinygen", weights=path).generate(n=4, seed=3)
    assert pixels[0].shape[0] > expected[0].height  # a 2x2 sheet of the four samples
    with pytest.raises(UsageError, match="count must be a whole number"):
        actions.generate(Weights("tinygen", file=str(path)), num=0)


def test_weights_not_cached_offline_say_how_to_import(tiny_registry):
    note, pullable = actions.weights_note("tiny", "demo")
    assert "not cached" in note and pullable
    with pytest.raises(WeightsUnavailable, match="anime weights import tiny:demo FILE"):
        actions.pull_weights("tiny", "demo")
    note, pullable = actions.weights_note("tiny", None)
    assert "Pick a style (demo)" in note and not pullable
    assert "has no pretrained styles" in actions.weights_note("tinygen", None)[0]


def test_a_cached_style_is_picked_first_and_runs(tiny_weights, photo, tmp_path, monkeypatch):
    import tiny_anime_plugin

    from anime_core.registry import load_registry, set_registry
    from anime_core.weights.store import import_file

    monkeypatch.setenv("TINY_STYLE_SHA256", hashlib.sha256(tiny_weights.read_bytes()).hexdigest())
    reg = load_registry(extra=[("tiny", tiny_anime_plugin)], entry_points=False, strict=True)
    set_registry(reg)
    style = reg.style("tiny", "demo")
    import_file(style.key, style.source, tiny_weights)
    assert actions.default_style("tiny") == "demo"
    note, pullable = actions.weights_note("tiny", "demo")
    assert "cached" in note and "not cached" not in note and not pullable
    result = actions.translate(str(photo), Weights("tiny", style="demo"), workspace=actions.Workspace(tmp_path / "o"))
    assert Image.open(result.files[0]).size == (24, 17)  # the style's preprocess size: 24 px long side


def test_the_download_button_fetches_and_verifies_a_style(tiny_weights, tmp_path, monkeypatch):
    import tiny_anime_plugin

    from anime_core.registry import load_registry, set_registry

    served = tmp_path / "served"
    served.mkdir()
    (served / "tiny-style.safetensors").write_bytes(tiny_weights.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("ANIME_OFFLINE")
        monkeypatch.setenv("TINY_STYLE_URL", f"http://127.0.0.1:{httpd.server_port}/tiny-style.safetensors")
        monkeypatch.setenv("TINY_STYLE_SHA256", hashlib.sha256(tiny_weights.read_bytes()).hexdigest())
        set_registry(load_registry(extra=[("tiny", tiny_anime_plugin)], entry_points=False, strict=True))
        assert actions.weights_note("tiny", "demo")[1]  # not cached: the button shows
        assert actions.pull_weights("tiny", "demo").startswith("`tiny:demo` weights downloaded and verified")
        note, pullable = actions.weights_note("tiny", "demo")
        assert note.startswith("`tiny:demo` weights are cached") and not pullable
    finally:
        httpd.shutdown()


def test_compare_keeps_going_past_a_failing_choice(tiny_weights, photo, tmp_path):
    picks = [Weights("tiny", style="demo"), Weights("tiny", file=str(tiny_weights))]
    shown, failed = actions.compare(str(photo), picks, workspace=actions.Workspace(tmp_path / "o"))
    assert [label for _, label in shown] == ["input", "tiny + tiny.safetensors"]
    assert len(failed) == 1 and failed[0].startswith("tiny:demo: ") and "anime weights import tiny:demo" in failed[0]
    with pytest.raises(UsageError, match="tick at least one style"):
        actions.compare(str(photo), [])


def test_pipelines_are_reused_until_the_weights_file_changes(tiny_weights):
    weights = Weights("tiny", file=str(tiny_weights))
    first = actions.pipeline(weights, {})
    assert actions.pipeline(weights, {}) is first
    os.utime(tiny_weights, ns=(1, 1))  # a new upload or a retrained file under the same name
    assert actions.pipeline(weights, {}) is not first


def test_a_video_goes_through_anime_run_with_its_sound(tiny_weights, tmp_path):
    pytest.importorskip("av")
    from video_helpers import make_clip, read_video

    clip = tmp_path / "clip.mp4"
    make_clip(clip, n=6, size=(32, 24))
    weights = Weights("tiny", file=str(tiny_weights))
    ws = actions.Workspace(tmp_path / "o")
    result = actions.video(str(clip), weights, deflicker=True, crf=20, workspace=ws)
    [out] = result.files
    frames, facts = read_video(out)
    assert out.name == "clip-tiny-tiny_safetensors.mp4" and len(frames) == 6 and facts["size"] == (32, 24)
    assert [codec for codec, _ in facts["audio"]] == ["aac"] and facts["rate"] == 24
    with pytest.raises(UsageError, match="CRF must be a whole number from 0"):
        actions.video(str(clip), weights, crf=64, workspace=ws)


def test_a_native_file_names_its_model(tiny_weights, tmp_path):
    assert actions.recorded_model(str(tiny_weights)) == "tiny"
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 16)
    assert actions.recorded_model(str(junk)) is None and actions.recorded_model(str(tmp_path / "x.pt")) is None


def test_video_tab_says_what_to_install(monkeypatch, tiny_weights):
    real = importlib.util.find_spec
    monkeypatch.setattr(actions.importlib.util, "find_spec", lambda name: None if name == "av" else real(name))
    assert actions.video_support() == actions.VIDEO_NOTE
    with pytest.raises(UsageError, match=r'pip install "anime-core\[video\]"'):
        actions.video("clip.mp4", Weights("tiny", file=str(tiny_weights)))


def test_the_variant_field_runs_a_plain_state_dict(registry, photo, tmp_path):
    """The form's ``--variant`` reaches ``load``: a bare ae ``rgb`` state dict fails blank and runs when chosen."""
    import torch

    torch.manual_seed(0)
    path = tmp_path / "rgb.pt"
    torch.save(anime_core.build("ae", variant="rgb").state_dict(), path)
    weights = Weights("ae", file=str(path))
    with pytest.raises(WeightsUnavailable, match="variant=rgb"):
        actions.translate(str(photo), weights, {"variant": ""}, workspace=actions.Workspace(tmp_path / "a"))
    result = actions.translate(str(photo), weights, {"variant": "rgb"}, workspace=actions.Workspace(tmp_path / "b"))
    expected = anime_core.load("ae", weights=path, variant="rgb")(Image.open(photo))
    assert np.array_equal(np.asarray(Image.open(result.files[0])), np.asarray(expected))
