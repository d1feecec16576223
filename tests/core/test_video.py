"""Videos and animated images through ``anime run``'s file loop: timing, audio, rotation, damage, deflicker."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_anime_plugin
import torch
from helpers import make_image
from PIL import Image
from video_helpers import clip_frames, make_clip, read_video, with_subtitles

from anime_core.inference import temporal, video
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import translate_files

av = pytest.importorskip("av")

# Measured on the tiny model's 64x48 frames, output frame k vs the image path on decoded input frame k:
# libx264 CRF 18 yuv420p (the default) differs by 1.7 levels on average (max 24 at colour edges, from
# 4:2:0 chroma); CRF 0 yuv444p by 0.38 on average and at most 2 (RGB<->YUV rounding), while the
# image path's frame k-1 differs from output k by up to 12-26 levels.
MEAN_TOL_DEFAULT = 3.0
MAX_TOL_LOSSLESS = 3


@pytest.fixture
def pipe(tiny_registry):
    torch.manual_seed(0)
    return TranslatePipeline(tiny_registry.model("tiny"), {"generator": tiny_anime_plugin.TinyGenerator()}, "cpu")


def run(pipe, inputs, out, **kw):
    return translate_files(pipe, [str(i) for i in inputs], FileOptions(output=out, progress=False, **kw))


def test_frames_rate_duration_audio_and_rotation_are_kept(pipe, tmp_path):
    src = tmp_path / "clip.mp4"
    make_clip(src, n=12, fps=24, rotation=90)
    report = run(pipe, [src], tmp_path / "out.mp4", batch_size=5)  # 5 + 5 + 2: a short last batch
    assert report.failed == [] and report.written == [tmp_path / "out.mp4"]
    frames, facts = read_video(tmp_path / "out.mp4")
    _, before = read_video(src)
    assert len(frames) == 12 and facts["rate"] == 24
    assert facts["duration"] == pytest.approx(before["duration"]) == pytest.approx(0.5)
    assert facts["audio"] == before["audio"] and facts["audio"][0][0] == "aac"  # copied, same length
    assert facts["rotation"] == 90 and facts["size"] == (64, 48)  # stored as the input, displayed upright
    assert frames[0].shape == (64, 48, 3)


def test_size_and_side_by_side_apply_to_every_frame(pipe, tmp_path):
    src = tmp_path / "clip.mp4"
    make_clip(src, n=3, audio=None)
    lossless = video.EncodeOptions(crf=0, pix_fmt="yuv444p")
    run(pipe, [src], tmp_path / "out.mp4", size=32, side_by_side=True, encode=lossless)
    frames, facts = read_video(tmp_path / "out.mp4")
    assert facts["size"] == (64, 24) and len(frames) == 3  # 32x24 input beside its 32x24 output
    small = Image.fromarray(read_video(src)[0][2]).resize((32, 24), Image.Resampling.LANCZOS)
    assert _mean_diff(frames[2][:, :32], np.asarray(small)) < 1
    assert _mean_diff(frames[2][:, 32:], np.asarray(pipe(small))) < 1


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_frame_k_equals_the_image_path_on_decoded_frame_k(pipe, tmp_path):
    src = tmp_path / "clip.mp4"
    make_clip(src, n=6, rotation=270)
    run(pipe, [src], tmp_path / "default", batch_size=4)
    run(pipe, [src], tmp_path / "lossless", batch_size=4, encode=video.EncodeOptions(crf=0, pix_fmt="yuv444p"))
    inputs, _ = read_video(src)
    expected = [np.asarray(pipe(Image.fromarray(f))).astype(np.int16) for f in inputs]
    outputs, facts = read_video(tmp_path / "default" / "clip.mp4")
    assert facts["rotation"] % 360 == 270 and len(outputs) == len(inputs) == 6
    for k in range(6):
        assert np.abs(outputs[k] - expected[k]).mean() < MEAN_TOL_DEFAULT, k
    outputs, _ = read_video(tmp_path / "lossless" / "clip.mp4")
    for k in range(6):
        assert np.abs(outputs[k] - expected[k]).max() <= MAX_TOL_LOSSLESS, k
        assert np.abs(outputs[k] - expected[k - 1]).max() > MAX_TOL_LOSSLESS, k  # the frames are told apart


def test_odd_frame_sizes_are_padded_for_yuv420p_or_kept(pipe, tmp_path):
    src = tmp_path / "odd.mp4"
    make_clip(src, n=3, size=(33, 25), pix_fmt="yuv444p", audio=None)
    report = run(pipe, [src], tmp_path / "a")
    assert report.failed == []
    frames, facts = read_video(tmp_path / "a" / "odd.mp4")
    assert facts["size"] == (34, 26) and len(frames) == 3
    assert "frame size 33x25 cannot be encoded as yuv420p; padded to 34x26" in report.notes[0][1]
    expected = np.asarray(pipe(Image.fromarray(read_video(src)[0][0])))
    assert _mean_diff(frames[0][:25, :33], expected) < MEAN_TOL_DEFAULT
    report = run(pipe, [src], tmp_path / "b", encode=video.EncodeOptions(pix_fmt="yuv444p"))
    assert report.notes == [] and read_video(tmp_path / "b" / "odd.mp4")[1]["size"] == (33, 25)


def test_audio_the_container_refuses_is_reencoded_to_aac_with_a_note(pipe, tmp_path):
    src = tmp_path / "clip.mov"
    make_clip(src, n=4, audio="pcm_mulaw")
    report = run(pipe, [src], tmp_path / "out.mp4")
    assert report.failed == []
    assert report.notes == [(str(src), "audio stream #1 (pcm_mulaw) cannot go into .mp4 files; re-encoded to aac")]
    _, facts = read_video(tmp_path / "out.mp4")
    assert facts["audio"][0][0] == "aac" and facts["audio"][0][1] == pytest.approx(4 / 24, abs=0.03)


def test_subtitles_are_copied_where_the_container_takes_them_else_dropped_with_a_note(pipe, tmp_path):
    make_clip(tmp_path / "clip.mp4", n=24)
    src = tmp_path / "subbed.mkv"
    with_subtitles(tmp_path / "clip.mp4", src, ["hello", "world"])
    report = run(pipe, [src], tmp_path / "out.mkv")
    assert report.failed == [] and report.notes == []
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle"]
        assert [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size] == [b"hello", b"world"]
    report = run(pipe, [src], tmp_path / "out.mp4")
    assert report.notes == [(str(src), "subtitle stream #2 (srt) cannot go into .mp4 files; dropped")]
    assert read_video(tmp_path / "out.mp4")[1]["audio"][0][0] == "aac"


def _truncated(tmp_path):
    src = tmp_path / "whole.mp4"
    make_clip(src, n=24, size=(64, 48), container_options={"movflags": "faststart"}, noise=20)
    bad = tmp_path / "in" / "cut.mp4"
    bad.parent.mkdir()
    bad.write_bytes(src.read_bytes()[: src.stat().st_size * 6 // 10])
    return bad


def test_a_truncated_video_is_named_with_its_reason_and_nothing_is_written(pipe, tmp_path):
    bad = _truncated(tmp_path)
    Image.fromarray(clip_frames(1, (20, 14))[0]).save(tmp_path / "in" / "still.png")
    report = run(pipe, [tmp_path / "in"], tmp_path / "out")
    [(path, reason)] = report.failed
    assert path == str(bad)
    assert reason.startswith("video ") and "frames" in reason and "nothing written (--keep-partial keeps the" in reason
    assert [p.name for p in report.written] == ["still.png"]  # the other input still went through
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["still.png"]  # no temp file either
    report = run(pipe, [bad], tmp_path / "kept", keep_partial=True)
    [(_, reason)] = report.failed
    kept, _ = read_video(tmp_path / "kept" / "cut.mp4")
    assert 0 < len(kept) < 24 and f"kept the {len(kept)} frames before it" in reason


def test_an_unreadable_video_is_named(pipe, tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    report = run(pipe, [tmp_path / "fake.mp4"], tmp_path / "out")
    assert report.failed == [(str(tmp_path / "fake.mp4"), report.failed[0][1])] and report.failed[0][1].startswith(
        "cannot open as a video"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_or_error_mid_video_leaves_nothing_under_the_final_name(pipe, tmp_path, monkeypatch, error):
    src = tmp_path / "clip.mp4"
    make_clip(src, n=12)
    forward, calls = pipe.forward, []

    def failing(x):
        calls.append(1)
        if len(calls) == 2:
            raise error("stop")
        return forward(x)

    monkeypatch.setattr(pipe, "forward", failing)
    out = tmp_path / "out"
    if error is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            run(pipe, [src], out, batch_size=4)
    else:
        report = run(pipe, [src], out, batch_size=4)
        assert report.failed == [(str(src), "generator failed: stop")]
    assert len(calls) == 2
    assert not out.exists() or list(out.iterdir()) == []  # neither clip.mp4 nor its temp file


def test_folders_mix_videos_animations_and_images_and_keep_names(pipe, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "sub" / "clip.mkv", n=3, audio=None)
    make_image((20, 14), 0).save(src / "still.jpg")
    frames = [make_image((16, 12), i) for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=[100, 200, 50], loop=3)
    report = run(pipe, [src], tmp_path / "out")
    assert report.failed == [] and report.notes == []
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in report.written) == [
        "anim.gif",
        "still.jpg",
        "sub/clip.mkv",
    ]
    assert len(read_video(tmp_path / "out" / "sub" / "clip.mkv")[0]) == 3


def _timing(path):
    with Image.open(path) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            out.append(im.info.get("duration"))
        return im.format, out, im.info.get("loop"), im.size


@pytest.mark.parametrize(
    ("name", "kw"),
    [("a.gif", {"loop": 3}), ("b.gif", {}), ("c.webp", {"loop": 2}), ("d.png", {"loop": 0})],
)
def test_animations_keep_frame_durations_and_loop_count(pipe, tmp_path, name, kw):
    frames = [make_image((16, 12), i) for i in range(3)]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=[100, 200, 50], **kw)
    report = run(pipe, [tmp_path / name], tmp_path / "out", batch_size=2)
    assert report.failed == [] and report.notes == []
    assert _timing(tmp_path / "out" / name) == _timing(tmp_path / name)
    with Image.open(tmp_path / "out" / name) as im:
        im.seek(2)
        last = np.asarray(im.convert("RGB"))
    expected = np.asarray(pipe(frames[2]))
    limit = 12 if name.endswith(".gif") else 4  # GIF: 256-colour palette per frame
    assert _mean_diff(last, expected) < limit


def test_multipage_tiff_gives_multipage_tiff_and_a_png_output_says_first_frame_only(pipe, tmp_path):
    pages = [make_image((16, 12), i) for i in range(2)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    run(pipe, [tmp_path / "pages.tif"], tmp_path / "out")
    with Image.open(tmp_path / "out" / "pages.tif") as im:
        assert im.n_frames == 2
        im.seek(1)
        assert _mean_diff(np.asarray(im.convert("RGB")), np.asarray(pipe(pages[1]))) < 1
    report = run(pipe, [tmp_path / "pages.tif"], tmp_path / "one.png")
    assert report.notes == [
        (
            str(tmp_path / "pages.tif"),
            "has 2 frames; only the first is written to .png (a .tif output keeps them all)",
        )
    ]


# -- deflicker and the flicker measure ---------------------------------------------------------
def test_flicker_counts_only_pixels_still_in_the_reference():
    still = np.full((4, 4, 3), 100, np.uint8)
    ref = [still, still.copy(), still.copy()]
    ref[1][0, 0] = ref[2][0, 0] = 200  # one pixel moves between frames 0 and 1
    out = [still + 2, still + 6, still + 2]  # everything flickers by 4 levels
    out[1][0, 0], out[2][0, 0] = 0, 4  # a big change where the reference moved, then 4 levels again
    measured = temporal.flicker(out, ref)
    assert measured.value == pytest.approx(4.0) and measured.pairs == 2
    assert measured.static == pytest.approx((15 + 16) / 32)
    everything = temporal.flicker(out)
    assert everything.value > 4 and everything.static == 1
    with pytest.raises(ValueError, match="fewer frames"):
        temporal.flicker(out, ref[:2])


def test_deflicker_smooths_still_regions_and_leaves_motion_and_large_changes_alone():
    torch.manual_seed(0)
    x = torch.rand(3, 16, 16)
    moving = x.clone()
    moving[:, :8] = 1 - moving[:, :8]  # the top half changes a lot, the bottom half not at all
    d = temporal.Deflicker()
    d(x, torch.full((3, 16, 16), 0.5))
    y = torch.full((3, 16, 16), 0.52)  # a 5-level flicker
    y[:, :, 12:] = 0.7  # and, on the right, a change too large to be flicker
    out = d(moving, y)
    assert torch.allclose(out[:, :6], y[:, :6])  # motion (minus the blur's 1-px reach): the model's output
    assert torch.allclose(out[:, 10:, 12:], torch.tensor(0.7))  # a large output change: kept
    w = 0.8 * (1 - (0.02 * 255) / 16)  # still input, 5.1-level output change: strength x output gate
    assert torch.allclose(out[:, 10:, :11], torch.tensor(w * 0.5 + (1 - w) * 0.52))


def test_deflicker_reduces_the_measured_flicker_of_a_noisy_clip(pipe, tmp_path):
    src = tmp_path / "noisy.mp4"
    make_clip(src, n=10, noise=6, audio=None)
    flick = {}
    for on in (False, True):
        out = tmp_path / f"out{on}.mp4"
        run(pipe, [src], out, batch_size=4, deflicker=on, encode=video.EncodeOptions(crf=0, pix_fmt="yuv444p"))
        flick[on] = temporal.flicker(video.iter_frames(out), video.iter_frames(src)).value
    assert flick[True] < 0.7 * flick[False]
