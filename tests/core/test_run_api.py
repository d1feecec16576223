"""Issue 24 item 6: ``anime_core.run(model, inputs, output, **options)`` is the runner of ``anime run``.

Checked on the eight real photos of ../shared/photos and a short generated clip: the call writes
the same files, bytes included, as the command, by model name or with a loaded pipeline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_anime_plugin
import torch
from photos import PHOTOS  # ../shared/photos beside the checkout, or $ANIME_TEST_PHOTOS
from PIL import Image
from video_helpers import make_clip, read_video

import anime_core
from anime_core.cli import main
from anime_core.errors import UsageError
from anime_core.runner.report import Report
from anime_core.weights.files import save_native


@pytest.fixture
def photos(tmp_path) -> Path:
    if not PHOTOS.is_dir():
        pytest.skip("the real photos (../shared/photos) are not here")
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, folder / photo.name)
    return folder


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    net = tiny_anime_plugin.TinyGenerator(width=4)
    return save_native(tmp_path / "tiny.safetensors", {"generator": net}, "tiny", {"width": 4})


def _cli(*args: object) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    assert stop.value.code == 0


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_images(a: Path, b: Path) -> bool:
    """The same files, pixel for pixel within one level: the CLI's application scope tunes the allocator, and
    oneDNN may then round a float sum the other way at a pixel (seen once in CI: an mp4 6 bytes apart)."""
    fa, fb = _files(a), _files(b)
    if sorted(fa) != sorted(fb):
        return False
    return all(np.abs(np.asarray(Image.open(a / name), np.int16) - np.asarray(Image.open(b / name), np.int16)).max()
               <= 1 for name in fa)


def test_run_is_public():
    assert "run" in anime_core.__all__ and callable(anime_core.run)


def test_a_folder_by_model_name_writes_what_anime_run_writes(tiny_registry, photos, weights, tmp_path):
    # fp32: the same bytes from two processes (OpenVINO's bf16, the default on some CPUs, need not repeat bit for bit)
    report = anime_core.run("tiny", photos, tmp_path / "api", weights=weights, size=96, batch_size=2, precision="fp32")
    assert isinstance(report, Report) and not report.failed and report.exit_code == 0
    assert sorted(p.name for p in report.written) == sorted(p.name for p in photos.iterdir())
    _cli("run", "tiny", "--weights", weights, photos, "-o", tmp_path / "cli", "--size", 96, "--batch-size", 2, "-q",
         "--precision", "fp32")
    assert len(_files(tmp_path / "api")) == 8 and _same_images(tmp_path / "api", tmp_path / "cli")

    again = anime_core.run("tiny", [str(photos / "*.jpg")], tmp_path / "api", weights=weights, size=96,
                           skip_existing=True)
    assert again.written == [] and len(again.skipped) == 8
    once_more = anime_core.run("tiny", photos, tmp_path / "api", weights=weights, size=96)
    assert len(once_more.replaced) == 8 and "8 written (8 replaced)" in once_more.summary()


def test_a_loaded_pipeline_and_a_video_clip(tiny_registry, photos, weights, tmp_path):
    pipe = anime_core.load("tiny", weights=weights, precision="fp32")  # bit for bit across processes
    first = sorted(photos.iterdir())[:2]
    report = anime_core.run(pipe, first, tmp_path / "two", size=64)
    _cli("run", "tiny", "--weights", weights, *first, "-o", tmp_path / "cli", "--size", 64, "-q", "--precision", "fp32")
    assert _same_images(tmp_path / "two", tmp_path / "cli") and len(report.written) == 2

    clip = tmp_path / "clip.mp4"
    make_clip(clip, n=6, size=(64, 48), audio=None)
    out = tmp_path / "clip-anime.mp4"
    report = anime_core.run(pipe, clip, out)
    assert report.written == [out] and not report.failed
    frames, _ = read_video(out)
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    _cli("run", "tiny", "--weights", weights, clip, "-o", tmp_path / "cli.mp4", "-q", "--precision", "fp32")
    cli_frames, _ = read_video(tmp_path / "cli.mp4")  # the same encoder settings; frames within H.264's noise
    assert len(cli_frames) == 6 and np.abs(np.stack(frames).astype(np.int16) - np.stack(cli_frames)).mean() < 1


def test_bad_calls_are_usage_errors(tiny_registry, photos, weights, tmp_path):
    pipe = anime_core.load("tiny", weights=weights)
    with pytest.raises(UsageError, match="leave out style"):
        anime_core.run(pipe, photos, tmp_path / "o", style="demo")
    with pytest.raises(UsageError, match="size must be a whole number of at least 8"):
        anime_core.run(pipe, photos, tmp_path / "o", size=4)
    with pytest.raises(UsageError, match="tile"):
        anime_core.run(pipe, photos, tmp_path / "o", tile=3)
    with pytest.raises(UsageError, match="inputs are paths"):  # e.g. an image: pipe(image) takes those
        anime_core.run(pipe, [photos, torch.zeros(3, 8, 8)], tmp_path / "o")
    with pytest.raises(UsageError, match="no input found"):
        anime_core.run(pipe, tmp_path / "nothing-here", tmp_path / "o")
    with pytest.raises(UsageError, match="colour"):  # a keyword the model does not take, named with what it takes
        anime_core.run("tiny", photos, tmp_path / "o", weights=weights, colour="red")
    assert not (tmp_path / "o").exists()
