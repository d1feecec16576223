"""``anime run`` on videos and ``anime eval --flicker`` as a user types them: exit codes, messages, files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tiny_anime_plugin
import torch
from helpers import subprocess_env
from video_helpers import make_clip, read_video

from anime_core.cli import main
from anime_core.weights.files import save_native

pytest.importorskip("av")


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_native(
        tmp_path / "tiny.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny", {"width": 4}
    )


@pytest.fixture
def anime(tiny_registry, capsys):
    """Run the ``anime`` entry point in this process; returns (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return exit_.value.code, out.out, out.err

    return run


@pytest.mark.slow
def test_run_a_clip_with_progress_then_measure_its_flicker(tiny_site, anime, weights, tmp_path):
    """The installed command end to end (a subprocess: 5-10 s), then its flicker (in this process)."""
    make_clip(tmp_path / "clip.mp4", n=12)

    args = ["run", "tiny", "--weights", weights, tmp_path / "clip.mp4", "-o", tmp_path / "out.mp4"]
    out = subprocess.run(
        [sys.executable, "-m", "anime_core.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
        env=subprocess_env(tiny_site),
    )
    assert out.returncode == 0, out.stderr
    assert "12/12" in out.stderr and "frame/s" in out.stderr  # the progress bar counts frames
    assert "tiny: 1 written, 0 failed" in out.stderr and str(tmp_path / "out.mp4") in out.stderr
    assert len(read_video(tmp_path / "out.mp4")[0]) == 12
    code, stdout, err = anime("eval", "--flicker", tmp_path / "out.mp4", "--reference", tmp_path / "clip.mp4", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["frame_pairs"] == 11 and report["reference"] is True and 0 <= report["flicker"] < 255


def test_a_damaged_video_exits_1_naming_it_and_the_others_are_written(anime, weights, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "good.mp4", n=4)
    (src / "bad.mp4").write_bytes(b"not a video at all")
    code, _, err = anime("run", "tiny", "--weights", weights, src, "-o", tmp_path / "out", "-q")
    assert code == 1
    assert f"failed: {src / 'bad.mp4'}: cannot open as a video:" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bitrate", "fast"], "error: --bitrate 'fast' is not a bitrate; write e.g. 8M or 2500k"),
        (["--codec", "nope"], "error: this PyAV build has no 'nope' video encoder"),
        (["--pix-fmt", "nope"], "error: unknown --pix-fmt 'nope'"),
        (["-o", "{tmp}/one.png"], "names an image but {tmp}/clip.mp4 is not one; give a .mp4 name or a folder"),
    ],
)
def test_bad_video_options_are_usage_errors(anime, weights, tmp_path, args, message):
    make_clip(tmp_path / "clip.mp4", n=2, audio=None)
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = anime("run", "tiny", "--weights", weights, tmp_path / "clip.mp4", "-q", *args)
    assert code == 2
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err
    assert not (tmp_path / "anime_out").exists()


def test_eval_flicker_without_reference_and_its_usage_errors(anime, tmp_path):
    make_clip(tmp_path / "clip.mp4", n=3, audio=None)
    code, out, _ = anime("eval", "--flicker", tmp_path / "clip.mp4")
    assert code == 0 and "all pixels (no --reference)" in out
    assert dict(line.split()[:2] for line in out.splitlines()[1:])["pairs"] == "2"
    code, _, err = anime("eval", "--flicker", tmp_path / "clip.mp4", "--real", tmp_path)
    assert code == 2 and "--flicker measures one video" in err
    make_clip(tmp_path / "short.mp4", n=2, audio=None)
    code, _, err = anime("eval", "--flicker", tmp_path / "clip.mp4", "--reference", tmp_path / "short.mp4")
    assert code == 2 and "the reference has fewer frames than the video" in err
