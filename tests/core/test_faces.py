"""Portrait mode on real faces with the real RetinaFace file: detection, alignment, paste, tracks, the cache.

Every test that needs the detector skips, saying why, where ``../shared/models`` is absent.
"""

from __future__ import annotations

import hashlib
import shutil

import faces_helpers as fh
import numpy as np
import pytest
import torch
from faces_helpers import needs_detector
from PIL import Image

from anime_core.errors import PluginError, UsageError, WeightsUnavailable
from anime_core.faces.align import align, apply, homography, similarity
from anime_core.faces.detect import RetinaFace, iou
from anime_core.faces.paste import head_mask
from anime_core.faces.track import FaceTracker
from anime_core.specs import FFHQ_512, DetectorSpec, WeightsSource
from anime_core.weights import fetch, import_file
from anime_core.weights.known import RETINAFACE_KEY, RETINAFACE_SOURCE


@pytest.fixture(scope="module")
def detector() -> RetinaFace:
    if not fh.RETINAFACE.is_file():
        pytest.skip(f"the RetinaFace test copy {fh.RETINAFACE} is absent (../shared/models)")
    return RetinaFace(fh.RETINAFACE)


@pytest.fixture
def models(tmp_path):
    """The registry with the exact test models, the detector imported into this test's empty cache."""
    from anime_core.registry import set_registry

    set_registry(fh.registry_with_test_models())
    import_file(RETINAFACE_KEY, RETINAFACE_SOURCE, fh.RETINAFACE)
    yield {"identity": fh.save_colour_map(tmp_path / "id.safetensors", False),
           "invert": fh.save_colour_map(tmp_path / "inv.safetensors", True)}
    set_registry(None)


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255


@needs_detector
def test_retinaface_finds_the_one_face_of_the_astronaut_photo(detector):
    faces = detector(fh.astronaut())
    assert len(faces) == 1 and faces[0].score > 0.9
    box = np.array(fh.ASTRONAUT_FACE, np.float64)
    got = faces[0].box
    assert iou(got[None], box[None])[0, 0] > 0.6, got
    x0, y0, x1, y1 = got
    eyes_mouth = faces[0].points[[0, 1, 3, 4]]
    assert ((eyes_mouth[:, 0] > x0) & (eyes_mouth[:, 0] < x1) & (eyes_mouth[:, 1] > y0) & (eyes_mouth[:, 1] < y1)).all()
    left_eye, right_eye = faces[0].points[:2]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 10  # upright, in image order


@needs_detector
def test_detection_is_scale_invariant_through_its_pixel_budget(detector):
    """A 3x larger copy is detected on a downscaled copy; boxes come back in its own pixels."""
    photo = fh.astronaut()
    big = np.asarray(Image.fromarray(photo).resize((1536, 1536), Image.Resampling.BICUBIC))
    assert detector.scale_for(1536, 1536) < 1
    small, large = detector(photo)[0], detector(big)[0]
    assert np.abs(large.points / 3 - small.points).max() < 3


@needs_detector
def test_alignment_puts_eyes_and_mouth_on_the_template_within_2_px(detector):
    photo = fh.astronaut()
    face = detector(photo)[0]
    template = np.array(FFHQ_512.points)
    crop, m = align(_tensor(photo), face.points, template, 512)
    assert np.abs(apply(m, face.points) - template)[[0, 1, 3, 4]].max() < 2  # the fit itself
    # and the warp agrees with the fit: marks painted at the landmarks land on the template in the crop
    marked = photo.copy()
    yy, xx = np.mgrid[: photo.shape[0], : photo.shape[1]] + 0.5
    for x, y in face.points[[0, 1, 3, 4]]:
        marked[(xx - x) ** 2 + (yy - y) ** 2 <= 2.0 ** 2] = (255, 0, 255)
    crop, _ = align(_tensor(marked), face.points, template, 512)
    magenta = (crop[0, 0] > 0.8) & (crop[0, 1] < 0.2) & (crop[0, 2] > 0.8)
    cy, cx = np.mgrid[:512, :512] + 0.5
    for x, y in template[[0, 1, 3, 4]]:
        near = magenta.numpy() & ((cx - x) ** 2 + (cy - y) ** 2 < 30 ** 2)
        assert near.sum() > 20
        assert abs(cx[near].mean() - x) < 2 and abs(cy[near].mean() - y) < 2


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 200, (5, 2))
    t = np.radians(17)
    m = np.array([[1.7 * np.cos(t), -1.7 * np.sin(t), 30], [1.7 * np.sin(t), 1.7 * np.cos(t), -12], [0, 0, 1]])
    assert np.abs(similarity(pts, apply(m, pts)) - m).max() < 1e-9
    h = m @ np.array([[1, 0.1, 0], [0, 1, 0], [1e-3, 2e-3, 1]])
    assert np.abs(homography(pts, apply(h, pts)) - h / h[2, 2]).max() < 1e-9


def test_the_head_mask_is_feathered_and_zero_at_the_crop_border():
    mask = head_mask(FFHQ_512)[0, 0]
    assert mask[:, 0].max() == 0 and mask[0].max() == 0 and mask[-1].max() == 0
    assert mask[300, 256] == 1  # the nose and mouth fully in
    row = mask[300]
    assert (row[:256].diff() >= 0).all() and (row[:256].diff().max() < 0.05)  # a ramp, no step


@needs_detector
@pytest.mark.parametrize("background", ["same", "keep"])
def test_an_identity_model_with_faces_returns_the_input_within_1_255(models, background):
    import anime_core

    pipe = anime_core.load("faceid", weights=models["identity"], faces=True, background=background)
    photo = Image.fromarray(fh.astronaut())
    out = np.asarray(pipe(photo)).astype(int)
    assert pipe.counts.stylised == 1
    assert np.abs(out - np.asarray(photo).astype(int)).max() <= 1


@needs_detector
def test_a_colour_inverting_model_changes_only_the_face(models):
    import anime_core

    pipe = anime_core.load("faceid", weights=models["invert"], faces=True, background="keep")
    photo = fh.astronaut()
    out = np.asarray(pipe(Image.fromarray(photo))).astype(int)
    diff = np.abs(out - photo.astype(int)).max(-1)
    x0, y0, x1, y1 = pipe.last_faces[0].box
    w, h = x1 - x0, y1 - y0
    ys, xs = np.nonzero(diff)
    # nothing changes beyond the head: a margin of one face size around the detected box at most
    assert xs.min() > x0 - w and xs.max() < x1 + w and ys.min() > y0 - h and ys.max() < y1 + h
    assert diff[int(y1 + h):].max() == 0 and diff[:, int(x1 + w):].max() == 0 and diff[:, : int(x0 - w)].max() == 0
    assert (diff > 0).mean() < 0.1  # the face, not the picture
    # the face itself is inverted: eyes to mouth, 1 - x within a few levels of the bilinear warps
    cx0, cy0, cx1, cy1 = (int(v) for v in (x0 + w * .3, y0 + h * .35, x1 - w * .3, y1 - h * .25))
    inside = np.abs(out[cy0:cy1, cx0:cx1] - (255 - photo[cy0:cy1, cx0:cx1].astype(int)))
    assert inside.mean() < 3, inside.mean()


@needs_detector
def test_a_composite_of_several_faces_finds_and_stylises_each(models, detector):
    import anime_core

    group, boxes = fh.group_photo(4)
    found = detector(group)
    assert len(found) == 4
    ious = iou(np.array(boxes, np.float64), np.array([f.box for f in found], np.float64))
    assert (ious.max(1) > 0.5).all(), ious
    pipe = anime_core.load("faceid", weights=models["invert"], faces=True, background="keep")
    out = np.asarray(pipe(Image.fromarray(group))).astype(int)
    assert pipe.counts.stylised == 4
    for x0, y0, x1, y1 in boxes:  # each face's centre inverted
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        patch = slice(cy - 3, cy + 3), slice(cx - 3, cx + 3)
        assert np.abs(out[patch] - (255 - group[patch].astype(int))).mean() < 4
    between = slice(0, group.shape[0]), slice(250, 262)  # canvas between the first two heads: untouched
    assert (out[between] == group[between]).all()


@needs_detector
def test_min_and_max_faces_leave_faces_to_the_background_and_count_them(models):
    import anime_core

    group, _ = fh.group_photo(4)
    pipe = anime_core.load("faceid", weights=models["invert"], faces=True, background="keep", min_face=120,
                           max_faces=1)
    pipe(Image.fromarray(group))
    c = pipe.counts
    assert (c.stylised, c.small, c.over) == (1, 2, 1), c
    assert pipe.counts.line(120, 1) == "faces: 1 stylised, 3 skipped (2 under 120 px, 1 over --max-faces 1) in 1 image"


@needs_detector
def test_a_still_clip_has_box_jitter_under_1_px(detector):
    """The photo as 40 frames with sensor noise: raw boxes wobble, tracked ones stay within 1 px."""
    photo = fh.astronaut().astype(np.float32)
    rng = np.random.default_rng(0)
    tracker = FaceTracker()
    raw, smooth = [], []
    for _ in range(40):
        frame = (photo + rng.normal(0, 6, photo.shape)).clip(0, 255).astype(np.uint8)
        faces = detector(frame)
        raw.append(np.concatenate([faces[0].box, faces[0].points.ravel()]))
        tracked = tracker.update(faces)
        assert len(tracked) == 1 and tracked[0].track == 0
        smooth.append(np.concatenate([tracked[0].box, tracked[0].points.ravel()]))
    raw_a, smooth_a = np.array(raw[10:]), np.array(smooth[10:])
    jitter = np.abs(smooth_a - smooth_a.mean(0)).max()
    assert jitter < 1, jitter
    assert np.abs(raw_a - raw_a.mean(0)).max() > jitter  # the smoothing is what keeps it still


@needs_detector
def test_faces_entering_and_leaving_a_clip_start_and_end_tracks(detector):
    group, _ = fh.group_photo(2)
    empty = np.full_like(group, 128)
    right_only = group.copy()
    right_only[:, : group.shape[1] // 2] = 128
    tracker = FaceTracker(patience=2)
    seen = [len(tracker.update(detector(f))) for f in [empty, right_only, group, group, right_only, right_only,
                                                        right_only, right_only]]
    assert seen == [0, 1, 2, 2, 2, 2, 1, 1]  # the left face enters on frame 2, is held 2 frames, then dropped
    assert sorted(t.ident for t in tracker.tracks) == [0]  # the right face kept its track throughout


def test_a_moving_face_is_followed_without_lag():
    from anime_core.faces.detect import Face

    tracker = FaceTracker()
    base = np.array([100.0, 100, 200, 200])
    pts = np.array([[130.0, 140], [170, 140], [150, 160], [135, 180], [165, 180]])
    for i in range(30):
        shift = np.array([8.0 * i, 0])
        out = tracker.update([Face(base + np.tile(shift, 2), pts + shift)])
    assert abs(out[0].box[0] - (100 + 8 * 29)) < 8  # under a frame's motion behind


# -- the detector's file: catalogue, cache, verification ------------------------------------
def test_the_detector_is_pinned_by_its_full_sha256_and_catalogued(registry):
    from anime_core.weights.catalog import catalog

    assert registry.detector("retinaface").source == RETINAFACE_SOURCE
    assert len(RETINAFACE_SOURCE.sha256 or "") == 64 and RETINAFACE_SOURCE.size == 1_719_139
    assert catalog(registry)[RETINAFACE_KEY].source is RETINAFACE_SOURCE
    with pytest.raises(UsageError, match="retinaface"):
        registry.detector("retinafac")


@needs_detector
def test_importing_the_shared_copy_into_an_empty_cache_verifies_it(_isolated_home):
    with pytest.raises(WeightsUnavailable, match="anime weights import detector:retinaface"):
        fetch(RETINAFACE_KEY, RETINAFACE_SOURCE)  # empty cache, offline: says how to install it
    path = import_file(RETINAFACE_KEY, RETINAFACE_SOURCE, fh.RETINAFACE)
    assert path.is_relative_to(_isolated_home)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == RETINAFACE_SOURCE.sha256
    assert fetch(RETINAFACE_KEY, RETINAFACE_SOURCE) == path


@needs_detector
def test_a_tampered_detector_file_is_refused(tmp_path, _isolated_home):
    bad = tmp_path / "detection_mobilenet0.25_Final.onnx"
    shutil.copyfile(fh.RETINAFACE, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsUnavailable):
        import_file(RETINAFACE_KEY, RETINAFACE_SOURCE, bad)
    assert not any(p.is_file() for p in (_isolated_home / "weights").rglob("*"))


def test_a_plugin_registers_a_detector_and_one_without_a_hash_is_refused():
    import types

    from anime_core import hookimpl
    from anime_core.registry import load_registry

    good = types.SimpleNamespace(anime_register_detectors=hookimpl(lambda: [
        DetectorSpec("better", "anime_core.faces.detect:build_retinaface",
                     WeightsSource("https://example.invalid/better.onnx", sha256="1" * 64))]))
    reg = load_registry(extra=[("det", good)], entry_points=False, strict=True)
    assert reg.detector("better").plugin == "det" and "detector:better" in __import__(
        "anime_core.weights.catalog", fromlist=["catalog"]).catalog(reg)
    bad = types.SimpleNamespace(anime_register_detectors=hookimpl(lambda: [
        DetectorSpec("nohash", "anime_core.faces.detect:build_retinaface",
                     WeightsSource("https://example.invalid/x.onnx"))]))
    with pytest.raises(PluginError, match="no sha256 or git_sha1"):
        load_registry(extra=[("det", bad)], entry_points=False, strict=True)


def test_face_options_without_faces_are_usage_errors(models):
    import anime_core

    with pytest.raises(UsageError, match="only apply with faces=True"):
        anime_core.load("faceid", weights=models["identity"], background="keep")
    with pytest.raises(UsageError, match="no style 'nosuch'"):
        anime_core.load("faceid", weights=models["identity"], faces=True, background="nosuch")


def test_a_face_style_names_its_template_and_the_whole_picture_is_not_cropped(registry):
    for name in ("face_paint_512_v1", "face_paint_512_v2", "celeba_distill"):
        assert registry.style("animegan", name).face == FFHQ_512
    assert registry.style("animegan", "hayao").face is None


@needs_detector
def test_strength_and_keep_colors_act_on_the_composite(models):
    """--strength and --keep-colors with --faces: the core controls apply once, to the pasted result."""
    import anime_core

    photo = fh.astronaut()
    full = np.asarray(anime_core.load("faceid", weights=models["invert"], faces=True, background="keep")(
        Image.fromarray(photo))).astype(int)
    pipe = anime_core.load("faceid", weights=models["invert"], faces=True, background="keep", strength=0.5)
    half = np.asarray(pipe(Image.fromarray(photo))).astype(int)
    # halfway between the photo and the inverted face, everywhere (outside the face both are the photo)
    assert np.abs(half - (photo.astype(int) + full) / 2).max() <= 1
    assert np.array_equal(np.asarray(pipe.with_controls(strength=0.0)(Image.fromarray(photo))), photo)
    kept = np.asarray(pipe.with_controls(strength=1.0, keep_colors=True)(Image.fromarray(photo))).astype(int)
    assert np.abs(kept - full).mean() > 1  # the face's colours are the photo's again, its lightness inverted
