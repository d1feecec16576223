"""Face styles crop to a square, and say so; ``--crop/--no-crop`` and ``crop=`` choose (issue 24 item 3).

The real ``face_paint_512_v2`` style (its ``center_crop`` preset) pinned to a random-weights AnimeGAN v2
file, on a real photo (``ANIME_TEST_PHOTOS``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from photos import animegan_weights, real_photos
from PIL import Image

import anime_core
from anime_core.cli import cli
from anime_core.inference import io

NOTE = "note: cropping every image to its centre square"


@pytest.fixture
def face_style(registry, tmp_path, monkeypatch):
    """``animegan:face_paint_512_v2`` as the plugin registers it, its weights a random AnimeGAN v2 file in the cache."""
    from anime_core.specs import WeightsSource
    from anime_core.weights import file_digests, import_file

    path = animegan_weights(tmp_path / "face.safetensors")
    st = registry.style("animegan", "face_paint_512_v2")
    assert st.preprocess == {"size": 512, "center_crop": True}
    source = WeightsSource(url=st.source.url, git_sha1=file_digests(path)["git_sha1"], layout="native",
                           filename="face_paint_512_v2.safetensors")
    local = dataclasses.replace(st, source=source)
    monkeypatch.setitem(registry.styles, st.key, local)
    import_file(st.key, local.source, path)
    return path


def test_a_face_style_crops_and_says_so_and_no_crop_keeps_the_whole_photo(face_style, tmp_path):
    photo = real_photos(1, side=120)[0]
    assert photo.size == (120, 85)
    photo.save(tmp_path / "photo.png")
    run = ["run", "animegan", "--style", "face_paint_512_v2", str(tmp_path / "photo.png"), "--size", "48",
           "--device", "cpu", "-q"]
    res = CliRunner().invoke(cli, [*run, "-o", str(tmp_path / "crop.png")])
    assert res.exit_code == 0, res.output
    assert res.output.count(NOTE) == 1 and "resized to 48x48 px (the style's preset" in res.output
    assert "--no-crop keeps the whole picture (long side 48 px)" in res.output
    assert Image.open(tmp_path / "crop.png").size == (48, 48)
    res = CliRunner().invoke(cli, [*run, "--no-crop", "-o", str(tmp_path / "whole.png")])
    assert res.exit_code == 0, res.output
    assert NOTE not in res.output and Image.open(tmp_path / "whole.png").size == (48, 34)
    # the API: the same choice as a keyword, the same pixels as the command line
    cropped = anime_core.load("animegan", style="face_paint_512_v2", device="cpu")(photo, size=48)
    assert np.array_equal(np.asarray(cropped), np.asarray(Image.open(tmp_path / "crop.png")))
    whole = anime_core.load("animegan", style="face_paint_512_v2", device="cpu", crop=False)(photo, size=48)
    assert np.array_equal(np.asarray(whole), np.asarray(Image.open(tmp_path / "whole.png")))


def test_crop_squares_any_style_at_its_short_side(registry, tmp_path):
    weights = animegan_weights(tmp_path / "w.safetensors")
    photo = real_photos(1, side=80)[0]
    pipe = anime_core.load("animegan", weights=weights, device="cpu")
    assert not pipe.crops() and pipe.crop_notice() is None and pipe(photo).size == photo.size
    square = anime_core.load("animegan", weights=weights, device="cpu", crop=True)
    out = square(photo)
    side = min(photo.size)
    assert out.size == (side, side)
    assert np.array_equal(np.asarray(out), np.asarray(pipe(io.resize_long_side(photo, None, center_crop=True))))
    assert "(--crop); --no-crop keeps the whole picture" in square.crop_notice()
    res = CliRunner().invoke(cli, ["run", "animegan", "--weights", str(weights), "--crop", "--device", "cpu", "-q",
                                   str(_saved(photo, tmp_path)), "-o", str(tmp_path / "sq.png")])
    assert res.exit_code == 0 and res.output.count(NOTE) == 1, res.output
    assert Image.open(tmp_path / "sq.png").size == (side, side)


def test_crop_sizes_are_checked_against_max_pixels(registry, tmp_path):
    weights = animegan_weights(tmp_path / "w.safetensors")
    square = anime_core.load("animegan", weights=weights, device="cpu", crop=True)
    with pytest.raises(io.BadImage, match="--size 2000 would make this 90x30 image 2000x2000"):
        square(np.zeros((30, 90, 3), np.uint8), size=2000, max_pixels=1_000_000)


def test_anime_info_says_what_each_style_does_with_a_photo(registry):
    res = CliRunner().invoke(cli, ["info", "animegan"])
    assert res.exit_code == 0, res.output
    styles = res.output.split("styles:")[1].split("default config:")[0]
    for face in ("face_paint_512_v1", "face_paint_512_v2", "celeba_distill"):
        block = styles.split(f"  {face}:")[1].split("\n  ")[1]
        assert block.startswith("  input: crops every photo to its centre square, resized to 512x512 px "
                                "(--no-crop: the whole photo, long side 512 px"), block
    paprika = styles.split("  paprika:")[1].split("\n  ")[1]
    assert paprika.startswith("  input: the whole photo at its own size")


def test_the_option_is_documented():
    res = CliRunner().invoke(cli, ["run", "animegan", "--help"])
    assert "--crop / --no-crop" in res.output


def _saved(photo: Image.Image, folder):
    path = folder / "photo.png"
    photo.save(path)
    return path
