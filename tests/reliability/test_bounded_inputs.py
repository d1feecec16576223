"""Bounded by design (issue 25): every frame, page and numeric option is checked before it is allocated.

The hostile inputs are built here, small: a low ``--max-pixels`` stands for the default limit,
except where ``run_bounded`` shows that the real thing (a 105 MP page in a 20 KB TIFF, ``--size 60000``,
``--num 20000000``, ``train.image_size=200000``) is refused in one sentence under a capped address space.
"""

from __future__ import annotations

import io as _io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tiny_anime_plugin
import torch
from helpers import make_image, subprocess_env
from PIL import Image

from anime_core.cli import main
from anime_core.weights.files import save_native

av = pytest.importorskip("av")


@pytest.fixture
def anime(tiny_registry, capsys):
    """Run ``anime ARGS`` in this process; returns (exit code, stderr)."""

    def run(*args: object) -> tuple[int, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        return done.value.code, capsys.readouterr().err

    return run


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_native(tmp_path / "tiny.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny",
                       {"width": 4})


@pytest.fixture
def gen_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_native(tmp_path / "gen.safetensors", {"generator": tiny_anime_plugin.TinyGen()}, "tinygen")


def pages(path: Path, sizes: list[tuple[int, int]], mode: str = "RGB") -> Path:
    """A multi-page TIFF of flat pages of these sizes (deflate: a big flat page is a few KB)."""
    imgs = [Image.new(mode, size, 1 if mode == "1" else (40 * i, 90, 200)) for i, size in enumerate(sizes)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], compression="tiff_deflate")
    return path


def growing_gif(path: Path, small: tuple[int, int], big: tuple[int, int]) -> Path:
    """A GIF whose logical screen and first frame are ``small`` and whose second frame is ``big``.

    Pillow writes two ``big`` frames; the header and the first frame's descriptor are then shrunk
    (its data still decodes: the decoder stops when the smaller frame is full).
    """
    a, b = Image.new("RGB", big, (10, 200, 30)), Image.new("RGB", big, (200, 10, 30))
    buf = _io.BytesIO()
    a.save(buf, "GIF", save_all=True, append_images=[b], duration=100, loop=0)
    data = bytearray(buf.getvalue())
    dims = small[0].to_bytes(2, "little") + small[1].to_bytes(2, "little")
    data[6:10] = dims
    first = data.index(b",\x00\x00\x00\x00")  # the first image descriptor, at (0, 0)
    data[first + 5 : first + 9] = dims
    path.write_bytes(bytes(data))
    return path


def mjpeg_clip(path: Path, sizes: list[int]) -> Path:
    """An MJPEG Matroska file of square frames of these sides; its stream declares the first frame's size."""

    def packets(side: int, start: int) -> list:
        cc = av.CodecContext.create("mjpeg", "w")
        cc.width = cc.height = side
        cc.pix_fmt, cc.time_base = "yuvj420p", Fraction(1, 24)
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 100, np.uint8), format="rgb24")
        frame = frame.reformat(format="yuvj420p")
        frame.pts = start
        return [*cc.encode(frame), *cc.encode(None)]

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=24)
        stream.width = stream.height = sizes[0]
        stream.pix_fmt = "yuvj420p"
        for i, side in enumerate(sizes):
            for packet in packets(side, i):
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 24)
                out.mux(packet)
    return path


def one_failure(err: str) -> str:
    """The one ``failed:`` line of a run's stderr (and no traceback, no raw warning)."""
    assert "Traceback" not in err and "DecompressionBombWarning" not in err and "unexpected" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- pages and frames: each checked from its declared size, before it is decoded --------------
def test_a_tiff_page_above_max_pixels_is_refused_before_any_page_is_decoded(anime, weights, tmp_path):
    """Only the first page used to be checked: a 200x200 second page ran under --max-pixels 10000."""
    src = pages(tmp_path / "doc.tif", [(40, 30), (200, 200)])
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.tif", "--max-pixels", 10000, "-q")
    assert code == 1
    assert one_failure(err) == (f"failed: {src}: frame 2 of 2 is 200x200 (0.04 MP), above the 0.01 MP limit; "
                                "shrink it or raise --max-pixels if it is genuine")
    assert not (tmp_path / "out.tif").exists()


def test_pages_are_counted_at_their_own_sizes_in_the_total(anime, weights, tmp_path):
    """Each page fits, together they do not; the total used to be the first page's size times the count."""
    src = pages(tmp_path / "doc.tif", [(10, 10), (90, 90), (90, 90)])
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.tif", "--max-pixels", 10000, "-q")
    assert code == 1
    assert "animation has 3 frames of 0.0163 MP in all, above the 0.01 MP limit" in one_failure(err)


def test_a_gif_frame_that_grows_the_canvas_is_refused_before_it_is_decoded(anime, weights, tmp_path):
    src = growing_gif(tmp_path / "grow.gif", (50, 40), (200, 200))
    with Image.open(src) as im:  # what the file is: a small canvas at open, grown by frame 2
        assert im.size == (50, 40) and im.n_frames == 2
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.gif", "--max-pixels", 10000, "-q")
    assert code == 1
    assert f"failed: {src}: frame 2 of 2 is 200x200 (0.04 MP), above the 0.01 MP limit" in one_failure(err)


def test_animated_frames_within_the_limit_still_translate(anime, weights, tmp_path):
    src = pages(tmp_path / "doc.tif", [(40, 30), (50, 50)])
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.tif", "--max-pixels", 10000, "-q")
    assert code == 0, err
    with Image.open(tmp_path / "out.tif") as im:
        assert im.n_frames == 2


def test_translated_frames_that_would_not_fit_memory_are_refused(anime, weights, tmp_path, monkeypatch):
    """The frames are held until the file is written: estimated from the first batch, against ANIME_MAX_MEMORY."""
    src = pages(tmp_path / "doc.tif", [(64, 64)] * 3)
    monkeypatch.setenv("ANIME_MAX_MEMORY", "40K")
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.tif", "-q")
    assert code == 1
    assert "holding 3 translated frames of 64x64 would need 72 KiB, above the 40 KiB memory budget" in one_failure(err)


# -- video frames -----------------------------------------------------------------------------
def test_a_video_whose_frames_are_above_max_pixels_is_refused_before_decoding(anime, weights, tmp_path):
    src = mjpeg_clip(tmp_path / "big.mkv", [200, 200])
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.mkv", "--max-pixels", 10000, "-q")
    assert code == 1
    assert one_failure(err) == (f"failed: {src}: the video's frame size is 200x200 (0.04 MP), above the 0.01 MP "
                                "limit; shrink it or raise --max-pixels if it is genuine")
    assert not (tmp_path / "out.mkv").exists()


def test_a_frame_larger_than_the_stream_declares_is_refused_by_the_decoder(anime, weights, tmp_path):
    """The stream says 64x64; frame 3 is 200x200: FFmpeg's decoder refuses it before allocating it."""
    src = mjpeg_clip(tmp_path / "liar.mkv", [64, 64, 200, 64])
    with av.open(str(src)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (64, 64)
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.mkv", "--max-pixels", 10000, "-q")
    assert code == 1
    assert f"failed: {src}: a frame is 200x200 (0.04 MP), above the 0.01 MP limit" in one_failure(err)
    assert not (tmp_path / "out.mkv").exists()


def test_a_frame_of_another_size_than_declared_is_refused(anime, weights, tmp_path):
    src = mjpeg_clip(tmp_path / "liar.mkv", [64, 64, 96, 64])
    code, err = anime("run", "tiny", "-w", weights, src, "-o", tmp_path / "out.mkv", "-q")
    assert code == 1
    assert f"failed: {src}: frame 3 is 96x96, not the 64x64 the video declares" in one_failure(err)


# -- --size: the resized image is bounded by --max-pixels too -----------------------------------
def test_size_is_checked_against_max_pixels_before_resizing(anime, weights, tmp_path):
    src = tmp_path / "photo.png"
    make_image((40, 30), 0).save(src)
    code, err = anime("run", "tiny", "-w", weights, src, "--size", 200, "--max-pixels", 10000, "-o", tmp_path / "out",
                      "-q")
    assert code == 1
    assert one_failure(err) == (f"failed: {src}: --size 200 would make this 40x30 image 200x150 (0.03 MP), above the "
                                "0.01 MP limit; use a smaller --size or raise --max-pixels if it is genuine")
    code, err = anime("run", "tiny", "-w", weights, src, "--size", 100, "--max-pixels", 10000, "-o", tmp_path / "out",
                      "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "photo.png").size == (100, 75)


# -- --num ------------------------------------------------------------------------------------
def test_num_above_the_limit_is_a_usage_error(anime, gen_weights, tmp_path):
    """Just above the limit (in this process; run_bounded below tries 20,000,000)."""
    code, err = anime("run", "tinygen", "-w", gen_weights, "--num", 10_001, "-o", tmp_path / "g.png")
    assert code == 2
    assert "--num is 10,001, above the limit of 10,000; draw more in runs with other seeds" in err
    assert not (tmp_path / "g.png").exists()


def test_num_whose_samples_would_not_fit_memory_is_a_usage_error(anime, gen_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("ANIME_MAX_MEMORY", "1M")
    code, err = anime("run", "tinygen", "-w", gen_weights, "--num", 2000, "-o", tmp_path / "g.png")
    assert code == 2
    assert "--num 2,000 samples of 8x8 would need" in err and "above the 1 MiB memory budget; lower --num" in err


# -- run_bounded: the real sizes, under a capped address space ----------------------------------
def _sentence(stderr: str) -> str:
    assert "MemoryError" not in stderr and "Traceback" not in stderr and "unexpected" not in stderr, stderr[-2000:]
    assert "DecompressionBombWarning" not in stderr, stderr[-2000:]
    return stderr


def test_bounded_tiff_with_a_105_mp_page_at_the_default_limit(run_bounded, tiny_site, weights, tmp_path):
    """A 20 KB TIFF whose second page is 10240x10240: refused from its directory, nothing decoded."""
    src = pages(tmp_path / "doc.tif", [(40, 30), (10240, 10240)], mode="1")
    assert src.stat().st_size < 100_000
    out = run_bounded(["run", "tiny", "-w", weights, src, "-o", tmp_path / "out.tif", "-q"],
                      headroom=1 << 30, env=subprocess_env(tiny_site))
    assert out.returncode == 1, out.stderr[-2000:]
    assert (f"failed: {src}: frame 2 of 2 is 10240x10240 (105 MP), above the 100 MP limit"
            in _sentence(out.stderr))


def test_bounded_video_with_frames_larger_than_declared(run_bounded, tiny_site, weights, tmp_path):
    src = mjpeg_clip(tmp_path / "liar.mkv", [64, 2048, 64])
    out = run_bounded(["run", "tiny", "-w", weights, src, "-o", tmp_path / "out.mkv", "--max-pixels", 10000, "-q"],
                      headroom=1 << 30, env=subprocess_env(tiny_site))
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"failed: {src}: a frame is 2048x2048 (4.19 MP), above the 0.01 MP limit" in _sentence(out.stderr)


def test_bounded_size_60000(run_bounded, tiny_site, weights, tmp_path):
    src = tmp_path / "photo.png"
    make_image((40, 30), 0).save(src)
    out = run_bounded(["run", "tiny", "-w", weights, src, "--size", 60000, "-o", tmp_path / "out", "-q"],
                      headroom=1 << 30, env=subprocess_env(tiny_site))
    assert out.returncode == 1, out.stderr[-2000:]
    assert (f"failed: {src}: --size 60000 would make this 40x30 image 60000x45000 (2,700 MP), above the 100 MP limit"
            in _sentence(out.stderr))


def test_bounded_num_20_million(run_bounded, tiny_site, gen_weights, tmp_path):
    out = run_bounded(["run", "tinygen", "-w", gen_weights, "--num", 20_000_000, "-o", tmp_path / "g.png"],
                      headroom=1 << 30, env=subprocess_env(tiny_site))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--num is 20,000,000, above the limit of 10,000" in _sentence(out.stderr)


def test_bounded_train_image_size_200000(run_bounded, tiny_site, train_data, tmp_path):
    out = run_bounded(["train", "tiny", *train_data, f"output_dir={tmp_path / 'run'}", "train.image_size=200000",
                       "train.max_steps=1", "-q"], headroom=1 << 30, env=subprocess_env(tiny_site))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "config key 'train.image_size' must be between 16 and 4096, not 200000" in _sentence(out.stderr)


def test_train_batch_whose_data_would_not_fit_memory_is_a_config_error(anime, train_data, tmp_path, monkeypatch):
    """16 crops of 64 px hold 1.5 MiB of data; with a 1 MiB budget the config is refused before anything runs."""
    monkeypatch.setenv("ANIME_MAX_MEMORY", "1M")
    code, err = anime("train", "tiny", *train_data, f"output_dir={tmp_path / 'run'}", "train.image_size=64",
                      "train.batch_size=16", "train.max_steps=1", "-q")
    assert code == 2
    assert ("train.batch_size=16 crops of train.image_size=64 would need 1.5 MiB, above the 1 MiB memory budget; "
            "lower train.batch_size or train.image_size" in err)
    assert not (tmp_path / "run").exists()


def test_walk_frame_counts_are_bounded(registry, capsys):
    """``--interpolate N`` (dcgan) and ``--steps N`` (ae) draw N frames held together: at most 1,000."""
    for args in (["run", "dcgan", "--interpolate", "20000000"], ["run", "ae", "--steps", "20000000"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 2
        option = args[2]
        assert f"error: {option} 20,000,000 is above the limit of 1,000 frames; use fewer" in capsys.readouterr().err
