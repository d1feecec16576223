"""Hostile inputs to ``anime run`` (issue 12 items 7, 8, 9, 18): nothing lost, every refusal names its reason.

Each test builds its hostile files in ``tmp_path`` and runs the real command in-process
(``anime_core.cli.main``) against the tiny test plugin, or the decoder the command uses.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import tiny_anime_plugin
import torch
from helpers import make_image
from PIL import Image
from torch import nn

import anime_core
from anime_core.cli import main
from anime_core.errors import AnimeError
from anime_core.inference import io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.weights.files import save_native


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
def weights(tmp_path):
    torch.manual_seed(0)
    g = tiny_anime_plugin.TinyGenerator(width=4)
    return save_native(tmp_path / "tiny.safetensors", {"generator": g}, "tiny", {"width": 4})


def save(img: Image.Image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


# -- item 7: outputs never overwrite each other --------------------------------------------------
def test_same_names_from_different_folders_get_unique_outputs(anime, weights, tmp_path):
    """d1/a.png, d2/a.png and a real d3/a-1.png: three inputs, three files (sizes tell them apart)."""
    a1 = save(make_image((20, 14), 1), tmp_path / "d1" / "a.png")
    a2 = save(make_image((22, 16), 2), tmp_path / "d2" / "a.png")
    a3 = save(make_image((18, 12), 3), tmp_path / "d3" / "a-1.png")
    for out, inputs in [
        (tmp_path / "files", [a1, a2, a3]),
        (tmp_path / "glob", [tmp_path / "d*" / "*.png"]),
    ]:
        code, err = anime("run", "tiny", "--weights", weights, *inputs, "-o", out, "-q")
        assert code == 0, err
        assert "tiny: 3 written, 0 failed" in err
        sizes = {p.name: Image.open(p).size for p in out.iterdir()}
        assert sizes == {"a.png": (20, 14), "a-1.png": (18, 12), "a-2.png": (22, 16)}


def test_an_invented_name_never_replaces_an_existing_file(anime, weights, tmp_path):
    a1 = save(make_image((20, 14), 1), tmp_path / "d1" / "a.png")
    a2 = save(make_image((22, 16), 2), tmp_path / "d2" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-1.png").write_bytes(b"the user's own file")
    code, err = anime("run", "tiny", "--weights", weights, a1, a2, "-o", out, "-q")
    assert code == 0, err
    assert (out / "a-1.png").read_bytes() == b"the user's own file"
    assert Image.open(out / "a-2.png").size == (22, 16) and "2 written" in err


def test_one_output_file_for_many_inputs_is_a_usage_error(anime, weights, tmp_path):
    a1 = save(make_image((20, 14), 1), tmp_path / "d1" / "a.png")
    a2 = save(make_image((22, 16), 2), tmp_path / "d2" / "b.png")
    code, err = anime("run", "tiny", "--weights", weights, a1, a2, "-o", tmp_path / "one.png")
    assert code == 2 and "names one file but 2 inputs were given; give a folder" in err
    assert not (tmp_path / "one.png").exists()


# -- item 8: 16-bit and 32-bit images are scaled, not clipped to white ------------------------
def test_16_and_32_bit_and_float_images_are_scaled_to_8_bits(tmp_path):
    ramp = np.linspace(0, 1, 64 * 16).reshape(16, 64)
    cases = {
        "gray16.png": Image.fromarray((ramp * 65535).round().astype(np.uint16)),  # I;16
        "gray16b.tif": Image.fromarray((ramp * 65535).round().astype(">u2")),  # I;16B
        "int32.tif": Image.fromarray((ramp * 65535).round().astype(np.int32)),  # I with a 16-bit range
        "float.tif": Image.fromarray(ramp.astype(np.float32)),  # F in [0, 1]
    }
    expected = np.rint(ramp * 255)
    for name, img in cases.items():
        img.save(tmp_path / name)
        got = np.asarray(io.decode(tmp_path / name), np.int16)
        assert got.shape == (16, 64, 3), name
        assert np.abs(got[..., 0] - expected).max() <= 1, name  # a ramp, not white
        assert (got[..., 0] == got[..., 2]).all(), name


def test_float_images_outside_0_1_are_stretched_and_nan_inf_count_as_0(tmp_path):
    arr = np.linspace(-5, 5, 32 * 8, dtype=np.float32).reshape(8, 32)
    arr[0, :3] = [np.nan, np.inf, -np.inf]
    Image.fromarray(arr).save(tmp_path / "hdr.tif")
    got = np.asarray(io.decode(tmp_path / "hdr.tif"), np.int16)[..., 0]
    clean = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    expected = np.rint((clean - clean.min()) / (clean.max() - clean.min()) * 255)
    assert np.abs(got - expected).max() <= 1  # min..max onto 0..255, not clipped


def test_16_bit_png_through_the_command_is_not_white(anime, weights, tmp_path):
    gray = np.full((16, 24), 20000, np.uint16)  # 20000 / 65535 -> 78 of 255
    Image.fromarray(gray).save(tmp_path / "g16.png")
    code, err = anime("run", "tiny", "--weights", weights, tmp_path / "g16.png", "-o", tmp_path / "out.png")
    assert code == 0, err
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    expected = pipe(Image.new("RGB", (24, 16), (78, 78, 78)))  # what an 8-bit copy of the photo gives
    assert np.asarray(Image.open(tmp_path / "out.png")).tolist() == np.asarray(expected).tolist()


# -- item 9: --max-pixels governs Pillow's own bomb limit ---------------------------------------
def test_max_pixels_governs_pillows_limit(tmp_path, monkeypatch):
    """Pillow's limit scaled down (1000 px) plays the part of its 89.5 MP default; a 90-100 MP photo
    is then a 1200 px image (Pillow warns) or a 2500 px one (Pillow refuses outright)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    small, big = (
        save(make_image((40, 30), 0), tmp_path / "small.png"),
        save(make_image((50, 50), 1), tmp_path / "big.png"),
    )
    assert io.decode(small, max_pixels=10_000).size == (40, 30)
    assert io.decode(big, max_pixels=10_000).size == (50, 50)
    with pytest.raises(
        io.BadImage, match=r"image is 50x50 .*above the 0\.002 MP limit; shrink it or raise --max-pixels"
    ):
        io.decode(big, max_pixels=2000)
    assert Image.MAX_IMAGE_PIXELS == 1000  # the process-wide setting is restored


def test_max_pixels_option_through_the_command(anime, weights, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    big = save(make_image((50, 50), 1), tmp_path / "big.png")
    code, err = anime("run", "tiny", "--weights", weights, big, "-o", tmp_path / "o.png", "--max-pixels", "1000000")
    assert code == 0, err
    assert io.decode(tmp_path / "o.png", max_pixels=10_000).size == (50, 50)
    code, err = anime("run", "tiny", "--weights", weights, big, "-o", tmp_path / "p.png", "--max-pixels", "2000")
    assert code == 1 and "above the 0.002 MP limit" in err and not (tmp_path / "p.png").exists()


# -- item 18: small images, animations, non-finite outputs, FIFOs --------------------------------
class Shrinking(nn.Module):
    """Two stride-2 convs with reflect padding: inputs under 3 px on a side make torch's padding fail."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(3, 3, 3, 2, 1, padding_mode="reflect"), nn.Conv2d(3, 3, 3, 2, 1, padding_mode="reflect")
        )
        self.up = nn.Upsample(scale_factor=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.up(self.down(x)))


def test_an_image_under_the_minimum_side_names_the_minimum(tiny_registry, tmp_path):
    pipe = TranslatePipeline(tiny_registry.model("tiny"), {"generator": Shrinking()}, "cpu")
    assert pipe(Image.new("RGB", (3, 7))).size == (3, 7)
    with pytest.raises(AnimeError, match="image is 2x9 px, under the 3 px on each side that tiny needs; upscale it"):
        pipe(Image.new("RGB", (2, 9)))
    assert pipe.min_side == 3
    from anime_core.runner.options import FileOptions
    from anime_core.runner.translate import translate_files

    save(Image.new("RGB", (2, 2)), tmp_path / "tiny.png")
    save(Image.new("RGB", (9, 9)), tmp_path / "fine.png")
    report = translate_files(pipe, [str(tmp_path)], FileOptions(output=tmp_path / "out", progress=False))
    assert report.failed == [
        (str(tmp_path / "tiny.png"), "image is 2x2 px, under the 3 px on each side that tiny needs; upscale it")
    ]
    assert [p.name for p in report.written] == ["fine.png"]


def test_animated_gif_and_multipage_tiff_keep_every_frame(anime, weights, tmp_path):
    """Item 18: multi-frame files no longer lose frames silently; every frame is translated (issue 14)."""
    frames = [make_image((16, 12), i) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:2])
    code, err = anime(
        "run", "tiny", "--weights", weights, tmp_path / "anim.gif", tmp_path / "pages.tif", "-o", tmp_path / "out", "-q"
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim.gif", "pages.tif"]
    with Image.open(tmp_path / "out" / "anim.gif") as gif, Image.open(tmp_path / "out" / "pages.tif") as tif:
        assert gif.n_frames == 3 and tif.n_frames == 2


def _exploding_tiny(path):
    """Finite weights whose activations overflow: conv 2 reaches inf, conv 3 subtracts inf from inf (NaN)."""
    g = tiny_anime_plugin.TinyGenerator(width=4)
    with torch.no_grad():
        c1, c2, c3 = (m for m in g.body if isinstance(m, nn.Conv2d))
        for conv in (c1, c2, c3):
            conv.bias.zero_()
        c1.weight.fill_(1e30)
        c2.weight.fill_(1e30)
        c3.weight.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 4, 1, 1).expand_as(c3.weight))
    return save_native(path, {"generator": g}, "tiny", {"width": 4})


def test_weights_with_non_finite_outputs_fail_the_file_instead_of_writing_black(anime, tmp_path):
    weights = _exploding_tiny(tmp_path / "bad.safetensors")
    src = save(Image.new("RGB", (16, 12), (255, 255, 255)), tmp_path / "white.png")
    code, err = anime("run", "tiny", "--weights", weights, src, "-o", tmp_path / "out", "-q")
    assert code == 1
    assert f"failed: {src}: the model's output for this input is not finite (NaN or inf)" in err
    assert "tiny: 0 written, 1 failed" in err and not (tmp_path / "out").exists()


def test_generate_with_non_finite_outputs_writes_no_grid(anime, tmp_path):
    """A diverged run's generator (NaN in its last layer): no grid of black squares, exit 1."""
    g = tiny_anime_plugin.TinyGen()
    with torch.no_grad():
        g.body[-2].bias.fill_(float("nan"))
    weights = save_native(tmp_path / "g.safetensors", {"generator": g}, "tinygen")
    code, err = anime("run", "tinygen", "--weights", weights, "--num", "4", "-o", tmp_path / "grid.png")
    assert code == 1 and "not finite (NaN or inf)" in err
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_refused_with_its_reason_and_never_opened(anime, weights, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = save(make_image((16, 12), 0), tmp_path / "good.png")
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(
            out=anime("run", "tiny", "--weights", weights, fifo, good, "-o", tmp_path / "out", "-q")
        )
    )
    worker.start()
    worker.join(60)
    if worker.is_alive():  # the old code would block opening the FIFO: unblock it, then fail
        with open(fifo, "wb"):
            pass
        worker.join(10)
        pytest.fail("anime run blocked on a FIFO")
    code, err = result["out"]
    assert code == 1
    assert f"failed: {fifo}: is a FIFO (named pipe), not a regular file; save the image to a file first" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]
