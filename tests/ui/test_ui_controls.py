"""The web app's Strength / Keep-colours controls and the Webcam tab's frame path (no browser, no gradio).

The browser test (test_ui_browser.py) streams Chromium's fake camera through the tab itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

import anime_core
from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.ui import actions, webcam
from anime_core.ui.actions import Weights
from anime_core.ui.controls import applied


@pytest.fixture
def v2_weights(tmp_path):
    from anime_core.weights.files import save_native

    torch.manual_seed(0)
    path = tmp_path / "v2.safetensors"
    save_native(path, {"generator": anime_core.build("animegan", variant="v2")}, "animegan", {"variant": "v2"})
    return path


def test_photo_tab_strength_zero_writes_the_photo_without_reloading(v2_weights, tmp_path):
    photo = tmp_path / "photo.png"
    make_image((48, 32), seed=5).save(photo)
    weights = Weights("animegan", file=str(v2_weights))
    ws = actions.Workspace(tmp_path / "out")
    full = actions.translate(str(photo), weights, workspace=ws)
    same = actions.translate(str(photo), weights, workspace=ws, controls={"keep_colors": True, "strength": 0.0})
    assert np.array_equal(np.asarray(Image.open(same.files[0])), np.asarray(Image.open(photo)))
    assert not np.array_equal(np.asarray(Image.open(full.files[0])), np.asarray(Image.open(photo)))
    cached = actions.pipeline(weights, {})
    assert cached.controls.identity  # the cached pipeline is untouched: the controls went to a copy
    assert applied(cached, True, 0.5).generator is cached.generator  # sharing its nets, no reload
    with pytest.raises(UsageError, match="strength must be a number from 0"):
        actions.translate(str(photo), weights, workspace=ws, controls={"strength": "lots"})


def test_ae_form_strength_is_its_own_field(registry):
    from anime_plugin_ae.pipeline import AEPipeline

    spec = registry.model("ae")
    pipe = AEPipeline(spec, {"generator": anime_core.build("ae")}, device="cpu", strength=0.3)
    got = applied(pipe, keep_colors=False, strength=0.9)  # the core slider (hidden for ae) is ignored
    assert got.strength == 0.3 and got.controls.strength == 1.0


def test_webcam_frame_is_scaled_checked_and_timed(v2_weights):
    pipe = anime_core.load("animegan", weights=v2_weights, device="cpu")
    frame = np.asarray(make_image((640, 480), seed=2))
    out, line, rate = webcam.frame(pipe, frame, 128, None)
    assert out.shape == (96, 128, 3) and out.dtype == np.uint8
    assert line.startswith("**first frame**") and "128x96 px" in line
    out2, line, rate = webcam.frame(pipe, frame, 128, rate)
    assert "fps**" in line and rate.fps > 0 and np.array_equal(out, out2)  # the same frame, the same output
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])  # some cameras send RGBA
    assert webcam.frame(pipe, rgba, 128, None)[0].shape == (96, 128, 3)
    kept = webcam.stylise(applied(pipe, True, 0.0), frame, 128)
    small = np.asarray(io.resize_long_side(Image.fromarray(frame), 128))
    assert np.abs(kept.astype(int) - small).max() <= 1  # the controls reach the stream too
    assert webcam.frame(pipe, None, 128, rate)[1] == "Waiting for the camera."


@pytest.mark.parametrize("side", [32, 4096, "big", float("nan")])
def test_webcam_side_is_bounded(side):
    with pytest.raises(UsageError, match="long side must be a whole number from 64 to 1024 px"):
        webcam.check_side(side)


def test_webcam_frame_over_the_pixel_limit_is_refused(v2_weights):
    pipe = anime_core.load("animegan", weights=v2_weights, device="cpu")
    with pytest.raises(UsageError, match="webcam frame"):
        webcam.stylise(pipe, np.zeros((300, 400, 3), np.uint8), 128, max_pixels=100_000)
    with pytest.raises(UsageError, match="must be an RGB image"):
        webcam.stylise(pipe, np.zeros((30, 40), np.uint8), 128)


def test_rate_counts_frames_over_its_window():
    rate = webcam.Rate(window=2.0)
    for i in range(11):
        rate.tick(0.05, now=10 + i * 0.25)  # 4 frames a second
    assert rate.fps == pytest.approx(4.0)
    assert rate.done[0] >= 10 + 2.5 - 2.0 - 1e-9  # older frames left the window
