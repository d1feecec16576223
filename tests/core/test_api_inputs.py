"""``pipe(x)`` takes what users hold (a path, PIL, numpy, torch, a list) and answers in the same kind.

Real photos (``ANIME_TEST_PHOTOS``, default ../shared/photos beside the checkout) through a shipped architecture
(AnimeGAN v2) with random weights: every kind must give the pixels the PIL path gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from photos import animegan_weights, real_photos
from PIL import Image

import anime_core
from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.inputs import InputKindError


@pytest.fixture(scope="module")
def animegan(tmp_path_factory):
    """AnimeGAN v2 (a shipped architecture) with random weights, loaded as a user would: from a weights file."""
    from anime_core.registry import load_registry, set_registry

    set_registry(load_registry())
    path = animegan_weights(tmp_path_factory.mktemp("w") / "animegan.safetensors")
    yield anime_core.load("animegan", weights=path, device="cpu")
    set_registry(None)


def test_every_input_kind_gives_the_pil_paths_pixels(animegan, tmp_path):
    photo = real_photos(1)[0]
    expected = np.asarray(animegan(photo))
    assert expected.shape == (photo.height, photo.width, 3)
    path = tmp_path / "photo.png"
    photo.save(path)
    arr = np.asarray(photo)
    for given in (path, str(path)):
        out = animegan(given)
        assert isinstance(out, Image.Image) and np.array_equal(np.asarray(out), expected)
    out = animegan(arr)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    for dtype in (np.float32, np.float64):
        out = animegan((arr / 255).astype(dtype))
        assert out.dtype == dtype and out.shape == arr.shape and out.min() >= 0 and out.max() <= 1
        assert np.abs(np.rint(out * 255) - expected).max() <= 1  # float output: the model's, not rounded
        assert np.mean(np.rint(out * 255) != expected) < 0.01
    chw = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    out = animegan(chw)
    assert out.dtype == torch.uint8 and out.shape == chw.shape and out.device == chw.device
    assert np.array_equal(out.permute(1, 2, 0).numpy(), expected)
    out = animegan(chw[None].float() / 255)
    assert out.dtype == torch.float32 and out.shape == (1, *chw.shape)
    assert (out[0].mul(255).round() - torch.from_numpy(expected.copy()).permute(2, 0, 1)).abs().max() <= 1
    gray = np.asarray(photo.convert("L"))
    assert np.array_equal(animegan(gray), np.asarray(animegan(photo.convert("L"))))  # HW gray: RGB out


def test_a_list_is_a_batch_answered_in_kind_and_order(animegan):
    a, b = real_photos(2)
    out = animegan([a, np.asarray(b), torch.from_numpy(np.asarray(a).copy()).permute(2, 0, 1)])
    assert isinstance(out, list) and len(out) == 3
    assert isinstance(out[0], Image.Image) and isinstance(out[1], np.ndarray) and isinstance(out[2], torch.Tensor)
    assert np.array_equal(np.asarray(out[0]), np.asarray(animegan(a)))
    assert np.array_equal(out[1], np.asarray(animegan(b)))
    assert np.array_equal(out[2].permute(1, 2, 0).numpy(), np.asarray(out[0]))
    assert isinstance(animegan((a,)), tuple) and animegan([]) == []


def test_resized_arrays_and_tensors_match_the_pil_path(animegan):
    photo = real_photos(1, side=160)[0]
    expected = np.asarray(animegan(photo, size=64))
    assert max(expected.shape[:2]) == 64
    assert np.array_equal(animegan(np.asarray(photo), size=64), expected)
    chw = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
    assert np.array_equal(animegan(chw, size=64).permute(1, 2, 0).numpy(), expected)
    assert np.array_equal(animegan(chw.float() / 255, size=64).mul(255).round().byte().permute(1, 2, 0).numpy(),
                          expected)  # resized as 8-bit RGB, as a file is


@pytest.mark.parametrize("bad, message", [
    (12, "takes a path .* not builtins.int"),
    ({"a": 1}, "takes a path"),
    (np.zeros((8, 8, 5), np.uint8), "an array image must be HWC .* 4 \\(RGBA\\) channels, not shape \\(8, 8, 5\\)"),
    (np.zeros((8, 8, 3), np.int32), "must be uint8 .* or float .*, not int32"),
    (np.zeros((2, 8, 8, 3), np.uint8), "HWC \\(or HW\\), not 4-dimensional"),
    (torch.zeros(8, 8, 3), "CHW or NCHW .* not shape \\(8, 8, 3\\)"),
    (torch.zeros(8), "CHW or NCHW, not 1-dimensional"),
    ([[np.zeros((8, 8, 3), np.uint8)]], "is itself a list"),
])
def test_bad_kinds_get_one_sentence_naming_what_is_accepted(animegan, bad, message):
    with pytest.raises(InputKindError, match=message) as caught:
        animegan(bad)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, UsageError)
    assert "\n" not in str(caught.value)


def test_float_values_outside_0_1_and_missing_files_are_refused(animegan, tmp_path):
    with pytest.raises(UsageError, match=r"values in \[0, 1\], not 0..255; divide 8-bit values by 255"):
        animegan(np.linspace(0, 255, 8 * 8 * 3).reshape(8, 8, 3))
    with pytest.raises(UsageError, match=r"not nan..nan"):
        animegan(torch.full((3, 8, 8), float("nan")))
    with pytest.raises(io.BadImage, match="nothing.png: cannot read"):
        animegan(tmp_path / "nothing.png")


def test_sizes_are_checked_against_the_budget_before_the_model(animegan):
    big = np.zeros((300, 400, 3), np.uint8)
    with pytest.raises(io.BadImage, match=r"this image is 400x300 .* above the 0.1 MP limit"):
        animegan(big, max_pixels=100_000)
    with pytest.raises(io.BadImage, match=r"--size 4000 would make this 400x300 image 4000x3000 .* the 1 MP limit"):
        animegan(big, size=4000, max_pixels=1_000_000)
    with pytest.raises(io.BadImage, match="above the 0.1 MP limit"):
        animegan(torch.zeros(1, 3, 300, 400), max_pixels=100_000)


def test_the_package_lists_its_public_api():
    names = set(dir(anime_core))
    assert {"load", "build", "list_models", "get_registry", "hookimpl", "AnimeError"} <= names
    assert {"load", "build", "list_models", "run"} <= set(anime_core.__all__)
    assert callable(anime_core.load) and anime_core.load is anime_core.api.load
    for name in anime_core.__all__:
        if name == "run" and not hasattr(anime_core.api, "run"):
            continue  # added by the runner's branch
        assert getattr(anime_core, name) is not None
