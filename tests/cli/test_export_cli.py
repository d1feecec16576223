"""``anime export``: what a user runs, the file it writes, and that the file runs like the weights it came from."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

from anime_core.cli import main
from anime_core.weights.files import save_native

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SR = {"width": 4, "num_blocks": 1}


@pytest.fixture
def anime(registry, capsys):
    """Run ``anime ARGS`` in this process; returns (exit code, stderr)."""

    def run(*args: object) -> tuple[int, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        return done.value.code, capsys.readouterr().err

    return run


def weights(registry, path, model: str, options: dict, parts: tuple[str, ...] = ("generator",)):
    torch.manual_seed(0)
    nets = {}
    for part in parts:
        net = registry.build(model, "generator", **options)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.1)  # every layer random, zero-initialised ones too
        nets[part] = net
    return save_native(path, nets, model, options)


def test_export_writes_a_documented_graph_that_runs_like_the_weights(anime, registry, tmp_path):
    w = weights(registry, tmp_path / "faces.safetensors", "pixelsake-sr", SR)
    code, err = anime("export", "pixelsake-sr", "--weights", w, "-o", tmp_path / "graphs")
    assert code == 0, err
    path = tmp_path / "graphs" / "pixelsake-sr-faces.onnx"
    assert path.is_file() and "max |diff|" in err and str(path) in err

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model"] == "pixelsake-sr" and meta["layout"] == "NCHW" and meta["value_range"] == "[-1, 1]"
    assert meta["out_scale"] == "4" and meta["stride"] == "1" and meta["source"] == "faces.safetensors"
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))  # dynamic N, H, W

    make_image((19, 13), 1).save(tmp_path / "small.png")
    outs = {}
    for name, source in [("torch", w), ("onnx", path)]:
        code, err = anime("run", "pixelsake-sr", "--weights", source, tmp_path / "small.png",
                          "-o", tmp_path / f"{name}.png", "-q")
        assert code == 0, err
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), np.int16)
    assert outs["onnx"].shape == (52, 76, 3)
    assert np.abs(outs["onnx"] - outs["torch"]).max() <= 1


def test_export_keeps_the_chosen_direction(anime, registry, tmp_path):
    options = {"arch": "resnet", "width": 4, "n_blocks": 1}
    w = weights(registry, tmp_path / "cg.safetensors", "cyclegan", options, ("generator", "generator_inverse"))
    out = tmp_path / "a2p.onnx"
    code, err = anime("export", "cyclegan", "--weights", w, "--direction", "anime2photo", "-o", out)
    assert code == 0, err
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["part"] == "generator_inverse"

    make_image((20, 16), 2).save(tmp_path / "frame.png")
    code, err = anime("run", "cyclegan", "--weights", out, tmp_path / "frame.png", "-o", tmp_path / "o.png")
    assert code == 3 and "generator_inverse" in err and "--direction photo2anime" in err
    code, err = anime("run", "cyclegan", "--weights", out, "--direction", "anime2photo", tmp_path / "frame.png",
                      "-o", tmp_path / "o.png", "-q")
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "out.png"], "should end in .onnx"),
        (["--precision", "bf16"], "'bf16' is not one of"),
    ],
)
def test_export_usage_errors(anime, registry, tmp_path, args, message):
    w = weights(registry, tmp_path / "sr.safetensors", "pixelsake-sr", SR)
    code, err = anime("export", "pixelsake-sr", "--weights", w, *args)
    assert code == 2 and message in err
    assert not list(tmp_path.glob("*.onnx"))


def test_an_onnx_file_is_not_exported_again(anime, tmp_path):
    (tmp_path / "g.onnx").write_bytes(b"graph")
    code, err = anime("export", "animegan", "--weights", tmp_path / "g.onnx")
    assert code == 2 and "already an ONNX graph" in err


def test_export_without_onnxruntime_names_the_extra(anime, registry, tmp_path, monkeypatch):
    w = weights(registry, tmp_path / "sr.safetensors", "pixelsake-sr", SR)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, err = anime("export", "pixelsake-sr", "--weights", w, "-o", tmp_path / "x.onnx")
    assert code == 2 and 'pip install "anime-core[onnx]"' in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow  # ~30 s: a full-size ae generator is exported and verified at two sizes
def test_export_takes_the_architecture_choice_a_plain_state_dict_needs(anime, registry, tmp_path):
    """A bare ae state dict of the rgb variant: refused with the hint, exported with --variant rgb, recorded."""
    import json

    torch.manual_seed(0)
    path = tmp_path / "rgb.pt"
    torch.save(registry.build("ae", "generator", variant="rgb").state_dict(), path)
    code, err = anime("export", "ae", "--weights", path, "-o", tmp_path / "a.onnx")
    assert code == 3 and "--variant rgb" in err, err
    code, err = anime("export", "ae", "--weights", path, "--variant", "rgb", "-o", tmp_path / "a.onnx")
    assert code == 0, err
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "a.onnx")).metadata_props}
    assert json.loads(meta["variant"])["variant"] == "rgb"
    code, err = anime("export", "pixelsake-sr", "--weights", path, "--variant", "rgb")
    assert code == 2 and "--variant" in err  # pixelsake-sr has no architecture choice: no such option
