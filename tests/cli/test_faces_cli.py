"""``anime run --faces`` as a user types it: stills, a video with audio and --deflicker, the log, the errors,
and the detector's offline import. Uses the real RetinaFace file (skipped, saying why, where absent)."""

from __future__ import annotations

import faces_helpers as fh
import numpy as np
import pytest
from faces_helpers import needs_detector
from PIL import Image

from anime_core.cli import main
from anime_core.registry import set_registry

pytestmark = needs_detector


@pytest.fixture
def anime(capsys):
    """The ``anime`` entry point in this process, with the exact test models registered."""
    set_registry(fh.registry_with_test_models())

    def run(*args: object) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        out = capsys.readouterr()
        return exit_.value.code, out.out, out.err

    yield run
    set_registry(None)


@pytest.fixture
def ready(anime, tmp_path):
    """Weights of both test models, the astronaut photo, and the detector imported offline into the empty cache."""
    code, _, err = anime("weights", "import", "detector:retinaface", fh.RETINAFACE)
    assert code == 0, err
    photo = tmp_path / "astronaut.png"
    Image.fromarray(fh.astronaut()).save(photo)
    return {"identity": fh.save_colour_map(tmp_path / "id.safetensors", False),
            "invert": fh.save_colour_map(tmp_path / "inv.safetensors", True), "photo": photo}


def test_the_detector_is_listed_and_missing_it_offline_says_how_to_import_it(anime, tmp_path):
    code, out, _ = anime("weights", "list")
    assert code == 0 and "detector:retinaface " in out and "missing" in out
    Image.fromarray(fh.astronaut()).save(tmp_path / "a.png")
    w = fh.save_colour_map(tmp_path / "id.safetensors", False)
    code, _, err = anime("run", "faceid", "--weights", w, "--faces", tmp_path / "a.png", "-o", tmp_path / "o.png")
    assert code == 3 and "anime weights import detector:retinaface" in err and "Traceback" not in err


def test_identity_with_faces_returns_the_photo_and_logs_the_faces(anime, ready, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = anime("run", "faceid", "--weights", ready["identity"], "--faces", ready["photo"], "-o", out)
    assert code == 0, err
    assert "faces: 1 stylised, 0 skipped in 1 image" in err
    assert np.abs(np.asarray(Image.open(out)).astype(int) - fh.astronaut()).max() <= 1


def test_inverting_model_changes_the_face_only_and_min_face_leaves_it(anime, ready, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = anime("run", "faceid", "--weights", ready["invert"], "--faces", "--background", "keep",
                         ready["photo"], "-o", out)
    assert code == 0, err
    diff = np.abs(np.asarray(Image.open(out)).astype(int) - fh.astronaut()).max(-1)
    assert diff[300:].max() == 0 and diff[120, 220] > 100  # the suit untouched, the face inverted
    code, _, err = anime("run", "faceid", "--weights", ready["invert"], "--faces", "--background", "keep",
                         "--min-face", 400, ready["photo"], "-o", out)
    assert code == 0 and "faces: 0 stylised, 1 skipped (1 under 400 px)" in err
    assert (np.asarray(Image.open(out)) == fh.astronaut()).all()


def test_background_same_runs_the_model_on_the_whole_picture(anime, ready, tmp_path):
    out = tmp_path / "out.png"
    code, _, err = anime("run", "faceid", "--weights", ready["invert"], "--faces", ready["photo"], "-o", out)
    assert code == 0, err
    got, photo = np.asarray(Image.open(out)).astype(int), fh.astronaut().astype(int)
    diff = (got - (255 - photo)).mean(-1)
    assert np.abs(diff[300:]).max() <= 1  # inverted everywhere, the face pasted without a seam:
    # in the face, only the photo's finest detail differs (what the 512 px round trip cannot carry, pasted
    # back as it was): no step in colour, which an 8 px average would show
    blocks = diff[:256].reshape(32, 8, 64, 8).mean((1, 3))
    assert np.abs(blocks).max() < 3, np.abs(blocks).max()


@pytest.mark.parametrize(("args", "message"), [
    (["--background", "keep"], "only apply with faces=True (anime run: --faces)"),
    (["--faces", "--background", "nosuch"], "no style 'nosuch'"),
    (["--faces", "--detector", "nosuch"], "face detector 'nosuch'"),
    (["--faces", "--max-faces", "0"], "0"),
])
def test_bad_face_options_are_one_line_usage_errors(anime, ready, tmp_path, args, message):
    code, _, err = anime("run", "faceid", "--weights", ready["identity"], *args, ready["photo"], "-o",
                         tmp_path / "o.png")
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_clip_with_faces_and_deflicker_keeps_its_audio_and_frames(anime, ready, tmp_path):
    av = pytest.importorskip("av")
    from fractions import Fraction

    clip, n = tmp_path / "clip.mp4", 8
    photo = fh.astronaut()[:, :, :]
    rng = np.random.default_rng(0)
    with av.open(str(clip), "w") as out:
        v = out.add_stream("libx264", rate=8, options={"crf": "12"})
        v.width, v.height, v.pix_fmt = 512, 512, "yuv420p"
        a = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(n):
            f = av.VideoFrame.from_ndarray((photo + rng.normal(0, 3, photo.shape)).clip(0, 255).astype(np.uint8),
                                           format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 8)
            out.mux(v.encode(f))
        out.mux(v.encode())
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        out.mux(a.encode(af))
        out.mux(a.encode())
    dest = tmp_path / "out.mp4"
    code, _, err = anime("run", "faceid", "--weights", ready["invert"], "--faces", "--background", "keep",
                         "--deflicker", clip, "-o", dest)
    assert code == 0, err
    assert f"faces: {n} stylised, 0 skipped in {n} images" in err
    with av.open(str(dest)) as got:
        assert got.streams.audio, "the audio track was dropped"
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in got.decode(video=0)]
    assert len(frames) == n
    for f in frames:
        assert np.abs(f[120, 215:225] - (255 - photo[120, 215:225].astype(int))).mean() < 20  # face inverted
        assert np.abs(f[400:] - photo[400:].astype(int)).mean() < 4  # the rest as it was (lossy video)


def test_the_web_app_photo_action_takes_the_faces_toggle_and_background(anime, ready, tmp_path):
    from anime_core.ui import actions

    assert actions.background_choices()[:2] == ["same", "keep"] and "animegan:hayao" in actions.background_choices()
    weights = actions.Weights("faceid", file=str(ready["invert"]))
    result = actions.translate(str(ready["photo"]), weights, faces=True, background="keep",
                               workspace=actions.Workspace(tmp_path / "ws"))
    assert "faces: 1 stylised, 0 skipped in 1 image" in result.message
    diff = np.abs(np.asarray(Image.open(result.files[0])).astype(int) - fh.astronaut()).max(-1)
    assert diff[300:].max() == 0 and diff[120, 220] > 100
