"""Inference: padding, tiling, batching, bad inputs, atomic writes, generate determinism."""

from __future__ import annotations

import os

import pytest
import tiny_anime_plugin
import torch
from helpers import make_image
from PIL import Image

from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.modes import RunRequest
from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline
from anime_core.inference.tiling import pad_to_multiple, run_tiled, tile_starts
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import run_pipeline, translate_files


@pytest.fixture
def pipe(tiny_registry):
    torch.manual_seed(0)
    return TranslatePipeline(tiny_registry.model("tiny"), {"generator": tiny_anime_plugin.TinyGenerator()}, "cpu")


def test_odd_sizes_are_padded_and_cropped_back(pipe):
    img = make_image((33, 25), 1)
    out = pipe(img)
    assert out.size == (33, 25)
    x, (h, w) = pad_to_multiple(torch.rand(1, 3, 25, 33), 8)
    assert x.shape[-2:] == (32, 40) and (h, w) == (25, 33)


def test_tiles_cover_the_image_with_overlap():
    assert tile_starts(100, 40, 8) == [0, 32, 60]
    assert tile_starts(30, 40, 8) == [0]


def test_tiled_output_equals_untiled_away_from_seams(pipe):
    """The tiny net's receptive field radius is 3 < overlap/4, so tiles reproduce the full output."""
    img = io.to_tensor(make_image((150, 130), 3))
    full = pipe.forward(img.unsqueeze(0))[0]
    tiled = run_tiled(pipe.forward, img, tile=48, overlap=16)
    assert tiled.shape == full.shape
    assert torch.allclose(tiled, full, atol=1e-5)
    assert torch.allclose(pipe.translate(img, tile=48), full, atol=1e-5)


def test_batched_equals_one_by_one(pipe):
    imgs = [make_image((20, 16), s) for s in range(3)]
    batch = pipe.forward(torch.stack([io.to_tensor(i) for i in imgs]))
    for img, y in zip(imgs, batch):
        assert torch.allclose(pipe.forward(io.to_tensor(img).unsqueeze(0))[0], y, atol=1e-6)


def test_exif_orientation_and_alpha_are_handled(tmp_path):
    img = make_image((30, 20), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert io.decode(tmp_path / "rot.jpg").size == (20, 30)
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert io.decode(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_bad_inputs_are_named_and_good_ones_still_written(pipe, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_image((24, 16), 0).save(src / "good.png")
    make_image((16, 16), 1).save(src / "good2.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("hello")
    data = (src / "good.png").read_bytes()
    (src / "trunc.png").write_bytes(data[: len(data) // 2])
    make_image((64, 64), 2).save(src / "huge.png")
    out = tmp_path / "out"
    options = FileOptions(output=out, max_pixels=40 * 40, progress=False)
    report = translate_files(pipe, [str(src), str(tmp_path / "missing.png")], options)
    reasons = {p.split("/")[-1]: r for p, r in report.failed}
    assert reasons["empty.png"] == "file is empty"
    assert reasons["text.jpg"] == "not an image Pillow can read"
    assert reasons["trunc.png"] == "image file is truncated"
    assert "above the 0 MP limit" in reasons["huge.png"] or "limit" in reasons["huge.png"]
    assert reasons["missing.png"] == "no such file or folder"
    assert sorted(p.name for p in report.written) == ["good.png", "good2.jpg"]
    assert Image.open(out / "good.png").size == (24, 16) and Image.open(out / "good2.jpg").format == "JPEG"
    assert report.exit_code == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "good.png").stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any new file


def test_outputs_never_overwrite_inputs(pipe, tmp_path):
    make_image((16, 16), 0).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    report = translate_files(pipe, [str(tmp_path / "a.png")], FileOptions(output=tmp_path, progress=False))
    assert report.failed and "would overwrite an input" in report.failed[0][1]
    assert (tmp_path / "a.png").read_bytes() == before


def test_side_by_side_and_size(pipe, tmp_path):
    make_image((40, 20), 0).save(tmp_path / "a.png")
    options = FileOptions(output=tmp_path / "o.png", size=20, side_by_side=True, progress=False)
    report = run_pipeline(pipe, RunRequest(inputs=(str(tmp_path / "a.png"),)), options)
    assert report.written == [tmp_path / "o.png"]
    assert Image.open(tmp_path / "o.png").size == (40, 10)  # two 20x10 images


def test_generate_same_seed_same_images(tiny_registry, tmp_path):
    torch.manual_seed(0)
    gen = GeneratePipeline(tiny_registry.model("tinygen"), {"generator": tiny_anime_plugin.TinyGen()}, "cpu")
    a, b, c = gen.generate(4, seed=1), gen.generate(4, seed=1), gen.generate(4, seed=2)
    assert [i.tobytes() for i in a] == [i.tobytes() for i in b]
    assert [i.tobytes() for i in a] != [i.tobytes() for i in c]
    report = run_pipeline(gen, RunRequest(num=4, seed=1), FileOptions(output=tmp_path / "grid.png"))
    assert report.written == [tmp_path / "grid.png"]
    assert Image.open(report.written[0]).size == (2 * 8 + 6, 2 * 8 + 6)  # 2x2 grid of 8 px with 2 px padding
    folder = run_pipeline(gen, RunRequest(num=4, seed=1), FileOptions(output=tmp_path / "out")).written
    assert folder == [tmp_path / "out" / "tinygen-seed1.png"]
    assert folder[0].read_bytes() == report.written[0].read_bytes()
    with pytest.raises(UsageError, match="takes no input files"):
        gen.run_mode(RunRequest(inputs=("x.png",)))


def test_bad_precision_and_device(tiny_registry):
    g = {"generator": tiny_anime_plugin.TinyGenerator()}
    with pytest.raises(UsageError, match="unknown precision"):
        TranslatePipeline(tiny_registry.model("tiny"), g, "cpu", precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            TranslatePipeline(tiny_registry.model("tiny"), g, "cuda")
