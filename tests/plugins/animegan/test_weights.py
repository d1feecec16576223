"""A checkpoint in the AnimeGANv2 PyTorch layout (written here; the real files cannot be downloaded) loads
by its keys alone and reproduces the module's output, through the Python API and ``anime run``."""

from __future__ import annotations

import numpy as np
import torch
from anime_plugin_animegan.converters import LAYOUT_V2, matches_v2
from anime_plugin_animegan.generator import GeneratorV1, GeneratorV2
from PIL import Image

import anime_core
from anime_core.registry import get_registry
from anime_core.weights import load_weights


def _v2_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    g = GeneratorV2().eval()
    with torch.no_grad():  # non-trivial norm parameters, so a wrong mapping would show
        for m in g.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    torch.save(g.state_dict(), path)  # exactly how the published .pt files were written
    return g


def test_converter_recognises_only_the_v2_layout(tmp_path):
    assert matches_v2(GeneratorV2().state_dict())
    assert matches_v2({f"module.{k}": v for k, v in GeneratorV2().state_dict().items()})  # DataParallel save
    assert not matches_v2(GeneratorV1().state_dict())
    partial = dict(GeneratorV2().state_dict())
    partial.pop("out_layer.0.weight")
    assert not matches_v2(partial)


def test_v2_pt_loads_without_naming_the_variant_and_reproduces_outputs(tmp_path):
    path = tmp_path / "paprika_like.pt"
    g = _v2_checkpoint(path)
    loaded = load_weights(path, "animegan", get_registry())
    assert loaded.layout == LAYOUT_V2 and loaded.generator == {"variant": "v2"}

    pipe = anime_core.load("animegan", weights=path, device="cpu")
    assert isinstance(pipe.generator, GeneratorV2)
    x = torch.rand(1, 3, 29, 35)
    with torch.no_grad():
        expected = ((g(x * 2 - 1) + 1) / 2).clamp(0, 1)  # the v2 recipe: x/127.5-1 in, *0.5+0.5 out
    assert torch.allclose(pipe.forward(x), expected, atol=1e-5)


def test_anime_run_with_a_v2_pt_file(tmp_path):
    from click.testing import CliRunner

    from anime_core.cli import cli

    path = tmp_path / "face.pt"
    g = _v2_checkpoint(path, seed=1)
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (27, 31, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out.png"
    res = CliRunner().invoke(cli, ["run", "animegan", "--weights", str(path), str(src), "-o", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(out)).astype(np.float32)
    x = torch.from_numpy(np.array(Image.open(src))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = (((g(x * 2 - 1) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0) * 255).numpy()
    assert got.shape == (27, 31, 3) and np.abs(got - want).max() <= 1.0  # 8-bit rounding only


def test_styles_are_v2_with_git_sha1_and_face_crops():
    reg = get_registry()
    paprika = reg.style("animegan", "paprika")
    assert paprika.source.git_sha1 == "58086c9db9fc7a9e5c2876ca31b8079599352643"
    assert paprika.source.url.endswith("/weights/paprika.pt") and paprika.source.layout == LAYOUT_V2
    assert paprika.generator == {"variant": "v2"} and not paprika.preprocess
    for name in ("face_paint_512_v2", "face_paint_512_v1", "celeba_distill"):
        st = reg.style("animegan", name)
        assert st.preprocess == {"size": 512, "center_crop": True} and "non-commercial" in st.license
