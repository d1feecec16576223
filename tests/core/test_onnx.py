"""ONNX export with parity checks, and the onnxruntime backend running the same pipelines (issue 15, 13).

Every shipped generator is built small with random weights, exported (dynamic batch/height/width),
checked against PyTorch at two sizes, then run through its own pipeline on ONNX Runtime. A
third-party-like NHWC graph (AnimeGANv3 conventions) runs through ``anime run --weights x.onnx``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_image
from PIL import Image
from torch import nn

import anime_core
from anime_core.api import pipeline_class
from anime_core.cli import main
from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.backends import onnx_cache, onnx_export, onnx_quant, onnx_runtime
from anime_core.inference.tiling import pad_to_multiple
from anime_core.ops import psnr
from anime_core.weights.files import save_native

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# model, generator options (narrow where the builder allows it)
GENERATORS = [
    pytest.param("animegan", {"variant": "v1"}, id="animegan-v1", marks=pytest.mark.slow),
    pytest.param("animegan", {"variant": "v2"}, id="animegan-v2"),
    pytest.param("cyclegan", {"arch": "resnet", "width": 4, "n_blocks": 1, "attention": "blocks"}, id="resnet-att"),
    pytest.param("cyclegan", {"arch": "unet", "width": 2, "attention": "both"}, id="unet-att"),
    pytest.param("ae", {"variant": "skip", "widths": [4, 8], "encoding_filters": 8}, id="ae-skip"),
    pytest.param("pixelsake-sr", {"width": 4, "num_blocks": 1}, id="sr"),
    pytest.param("dcgan", {"image_size": 16, "width": 4, "attention": True, "num_classes": 3, "embed_dim": 4},
                 id="dcgan-cond"),
    pytest.param("dcgan", {"image_size": 16, "width": 4}, id="dcgan"),  # num_classes 0 is no metadata
]


def random_weights(net: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (zero-initialised layers, such as SR's tail and attention's gamma, too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net


@pytest.fixture
def native(registry, tmp_path):
    """A native weights file of ``model`` built with ``options`` and random weights."""

    def write(model: str, options: dict) -> object:
        net = random_weights(registry.build(model, "generator", **options))
        return save_native(tmp_path / f"{model}.safetensors", {"generator": net}, model, options)

    return write


@pytest.mark.parametrize(("model", "options"), GENERATORS)
def test_export_matches_pytorch_and_runs_through_the_same_pipeline(native, tmp_path, model, options):
    """Parity at two sizes, then the same images through the model's pipeline on either backend."""
    weights = native(model, options)
    torch_pipe = anime_core.load(model, weights=weights, device="cpu", backend="torch", precision="fp32")
    result = onnx_export.export(torch_pipe, tmp_path / "g.onnx", generator_options=options)

    assert len(result.checks) == 2 and result.max_diff <= onnx_export.FP32_TOLERANCE
    assert len({c.shape for c in result.checks}) == 2  # two different input sizes (or batch sizes)
    meta = result.meta
    assert meta["model"] == model and json.loads(meta["variant"]) == options
    assert meta["layout"] in ("NCHW", "NC")

    onnx_pipe = anime_core.load(model, weights=result.path, device="cpu")
    assert isinstance(onnx_pipe, pipeline_class(registry_model(model)))
    assert isinstance(onnx_pipe.generator, onnx_runtime.OnnxGenerator)
    if torch_pipe.kind == "generate":
        want = torch.stack([torch.from_numpy(np.array(i, np.int16)) for i in torch_pipe.generate(n=4, seed=1)])
        got = torch.stack([torch.from_numpy(np.array(i, np.int16)) for i in onnx_pipe.generate(n=4, seed=1)])
    else:
        assert meta["stride"] == str(torch_pipe.stride) and meta["out_scale"] == str(torch_pipe.out_scale)
        side = max(torch_pipe.stride, 40)
        img = make_image((side + 3, side - 5 if side > 40 else side + 9), 2)  # not multiples of the stride
        want = torch.from_numpy(np.asarray(torch_pipe(img), np.int16))
        got = torch.from_numpy(np.asarray(onnx_pipe(img), np.int16))
    assert got.shape == want.shape
    assert int((got - want).abs().max()) <= 1  # 8-bit rounding of outputs that differ by ~1e-6
    if model == "cyclegan" and options["arch"] == "resnet":  # attention after two stride-2 convs
        assert json.loads(meta["attention_strides"]) == [4]
        assert onnx_pipe.generator.attention_bytes(1, 512, 512) == 2**30  # (128 * 128)^2 fp32 scores
        with pytest.raises(io.BadImage, match=r"GiB for self-attention at 1024x1024 px.*--tile 512"):
            onnx_pipe.forward(torch.zeros(1, 3, 1024, 1024))  # refused before ORT would allocate 16 GiB


def registry_model(name: str):
    return anime_core.get_registry().model(name)


def test_fp16_export_reports_its_distance(native, tmp_path):
    weights = native("pixelsake-sr", {"width": 4, "num_blocks": 1})
    pipe = anime_core.load("pixelsake-sr", weights=weights, device="cpu", backend="torch", precision="fp32")
    result = onnx_export.export(pipe, tmp_path / "h.onnx", precision="fp16")
    assert result.meta["precision"] == "fp16"
    assert 0 < result.max_diff <= onnx_export.FP16_TOLERANCE  # half precision is not exact, and says by how much
    out = anime_core.load("pixelsake-sr", weights=result.path, device="cpu")(make_image((20, 12), 0))
    assert out.size == (80, 48)


class _ExportsDifferently(nn.Module):
    """A generator whose exported graph is not what it computes eagerly: the check must catch it."""

    stride = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + 0.01 if torch.compiler.is_exporting() else y


def test_export_that_differs_from_pytorch_writes_nothing(tmp_path):
    spec = registry_model("animegan")
    pipe = pipeline_class(spec)(spec, {"generator": _ExportsDifferently()}, device="cpu")
    with pytest.raises(onnx_export.ExportError, match="differs from PyTorch by up to 0.01"):
        onnx_export.export(pipe, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


class NHWCNet(nn.Module):
    """Third-party conventions (AnimeGANv3): NHWC float in [-1, 1], sides a multiple of 8, tanh NHWC out."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1, padding_mode="reflect")
        self.b = nn.Conv2d(6, 3, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.a(x.permute(0, 3, 1, 2)), 0.2)
        coarse = F.interpolate(F.avg_pool2d(h, 8), scale_factor=8.0, mode="nearest")  # needs sides % 8 == 0
        return torch.tanh(self.b(h + coarse)).permute(0, 2, 3, 1)


def test_third_party_nhwc_graph_runs_through_anime_run(registry, tmp_path, capsys):
    net = random_weights(NHWCNet(), seed=3).eval()
    path = tmp_path / "v3.onnx"
    torch.onnx.export(net, (torch.zeros(2, 64, 48, 3),), str(path), dynamo=True, verbose=False,
                      input_names=["AnimeGANv3_input:0"], dynamic_shapes=({0: "n", 1: "h", 2: "w"},))
    img = make_image((45, 37), 4)  # 45x37: padded to 48x40 and cropped back
    img.save(tmp_path / "photo.png")

    with pytest.raises(SystemExit) as done:
        main(["run", "animegan", "--weights", str(path), str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.png"),
              "-q"])
    assert done.value.code == 0, capsys.readouterr().err
    got = np.asarray(Image.open(tmp_path / "out.png"), np.int16)

    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    padded, _ = pad_to_multiple(x, 8)
    with torch.no_grad():
        y = net((padded * 2 - 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)[..., :37, :45]
    want = ((y + 1) / 2).clamp(0, 1).mul(255).round()[0].permute(1, 2, 0).numpy().astype(np.int16)
    assert got.shape == want.shape == (37, 45, 3)
    assert np.abs(got - want).max() <= 2
    gen = anime_core.load("animegan", weights=path).generator
    assert gen.layout == "NHWC" and gen.stride == onnx_runtime.FOREIGN_STRIDE


def test_backend_onnxruntime_exports_once_and_matches_torch(native, tmp_path, monkeypatch):
    weights = native("cyclegan", {"arch": "resnet", "width": 4, "n_blocks": 1})
    img = make_image((44, 36), 5)
    torch_pipe = anime_core.load("cyclegan", weights=weights, device="cpu", backend="torch", precision="fp32")
    pipe = anime_core.load("cyclegan", weights=weights, device="cpu", backend="onnxruntime")
    whole = np.asarray(pipe(img), np.int16)
    assert np.abs(whole - np.asarray(torch_pipe(img), np.int16)).max() <= 1
    # tiled: the cut export's segments on ONNX Runtime, the norms gathered across tiles (tests/core/test_onnx_tiles.py)
    tiled = np.asarray(pipe(img, tile=24), np.int16)
    assert np.abs(tiled - whole).mean() <= 1 and pipe.last_tiling.tiles > 1
    cached = list((Path(os.environ["ANIME_HOME"]) / "onnx").glob("*.onnx"))
    assert len(cached) == 2 and sum("-cut-" in p.name for p in cached) == 1  # the graph, and its cut export

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_cache, "build_verified", no_export)
    again = anime_core.load("cyclegan", weights=weights, device="cpu", backend="onnxruntime")
    assert np.array_equal(np.asarray(again(img), np.int16), whole)


def test_an_exported_file_as_weights_and_as_a_style(native, registry, tmp_path):
    """The graph refuses what it cannot honour, and a style whose source layout is onnx runs it."""
    from anime_core.specs import StyleSpec, WeightsSource
    from anime_core.weights.store import import_file

    weights = native("pixelsake-sr", {"width": 4, "num_blocks": 1})
    torch_pipe = anime_core.load("pixelsake-sr", weights=weights, device="cpu", backend="torch", precision="fp32")
    path = onnx_export.export(torch_pipe, tmp_path / "sr.onnx").path
    with pytest.raises(UsageError, match="runs with --backend onnxruntime"):
        anime_core.load("pixelsake-sr", weights=path, backend="torch")
    with pytest.raises(UsageError, match="keeps the precision it was exported with"):
        anime_core.load("pixelsake-sr", weights=path, precision="fp16")
    with pytest.raises(anime_core.AnimeError, match="exported from model 'pixelsake-sr'"):
        anime_core.load("animegan", weights=path)
    proto = onnx.load(str(path))
    next(p for p in proto.metadata_props if p.key == "stride").value = "1000000000"  # would pad to 1e9 px
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(anime_core.AnimeError, match="corrupt metadata"):
        anime_core.load("pixelsake-sr", weights=tmp_path / "bad.onnx")

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = WeightsSource(url="https://example.invalid/sr.onnx", sha256=digest, layout="onnx")
    registry.styles["pixelsake-sr:tiny-onnx"] = StyleSpec("pixelsake-sr", "tiny-onnx", source, preprocess={"size": 24})
    import_file("pixelsake-sr:tiny-onnx", source, path)  # verified into the cache; ANIME_OFFLINE=1 in tests
    pipe = anime_core.load("pixelsake-sr", style="tiny-onnx")
    assert isinstance(pipe.generator, onnx_runtime.OnnxGenerator)
    assert pipe(make_image((40, 20), 1)).size == (96, 48)  # the style's size (long side 24), then x4


def test_missing_onnxruntime_names_the_extra(registry, tmp_path, monkeypatch, capsys):
    (tmp_path / "x.onnx").write_bytes(b"not really")
    make_image((16, 16), 0).save(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(SystemExit) as done:
        main(["run", "animegan", "--weights", str(tmp_path / "x.onnx"), str(tmp_path / "a.png"), "-o",
              str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert 'pip install "anime-core[onnx]"' in err and "Traceback" not in err


@pytest.mark.slow
def test_int8_export_is_calibrated_on_photos_and_checked_against_fp32(native, tmp_path, capsys, monkeypatch):
    weights = native("pixelsake-sr", {"width": 4, "num_blocks": 1})
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        make_image((72, 56), i).save(photos / f"p{i}.png")
    (photos / "notes.txt").write_text("not an image: skipped")
    out = tmp_path / "g-int8.onnx"
    with pytest.raises(SystemExit) as done:
        main(["export", "pixelsake-sr", "--weights", str(weights), "--precision", "int8", "--calibrate", str(photos),
              "--size", "32", "-o", str(out)])
    assert done.value.code == 0, capsys.readouterr().err
    assert "int8 vs fp32 PSNR" in capsys.readouterr().err
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    scores = json.loads(meta["int8_psnr_db"])
    assert meta["precision"] == "int8" and len(scores) == 2 and min(scores) >= onnx_quant.INT8_MIN_PSNR
    graph = onnx.load(str(out)).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)  # really quantized, not the fp32 graph renamed

    img = make_image((32, 24), 0)
    fp32 = anime_core.load("pixelsake-sr", weights=weights, device="cpu")(img)
    int8 = anime_core.load("pixelsake-sr", weights=out, device="cpu")(img)
    a, b = (torch.from_numpy(np.asarray(i, np.float32)).permute(2, 0, 1)[None] / 255 for i in (fp32, int8))
    assert float(psnr(b, a)[0]) >= 30  # the int8 graph runs through the same pipeline, close to torch's fp32

    monkeypatch.setattr(onnx_quant, "INT8_MIN_PSNR", 1000.0)
    refused = tmp_path / "refused.onnx"
    with pytest.raises(SystemExit) as done:
        main(["export", "pixelsake-sr", "--weights", str(weights), "--precision", "int8", "--calibrate", str(photos),
              "--size", "32", "-o", str(refused)])
    assert done.value.code == 1 and "dB from fp32" in capsys.readouterr().err and not refused.exists()

    with pytest.raises(SystemExit) as done:
        main(["export", "pixelsake-sr", "--weights", str(weights), "--precision", "int8", "-o", str(refused)])
    assert done.value.code == 2 and "--calibrate" in capsys.readouterr().err
