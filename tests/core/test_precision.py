"""``--precision auto`` and the OpenVINO backend (issue 26).

Auto runs bf16 only where the device computes it natively and only if the model's output stays
within 1/255 (mean) and 6/255 (99.9th percentile) of fp32 on the shipped real photo; the verdict
is cached per weights file; ``fp32`` is today's exact output. AnimeGAN v2 (shipped architecture,
random weights) is the model; the capability probe is patched where a test is about the decision.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

import anime_core
from anime_core.api import pick_backend, pipeline_class
from anime_core.cli import main
from anime_core.inference import pipeline as pl
from anime_core.inference import precision as auto
from anime_core.inference import precision as pr
from anime_core.registry import get_registry
from anime_core.weights.files import save_native
from anime_core.weights.store import anime_home

NATIVE_BF16 = auto.precision_accelerated(torch.device("cpu"), "bf16")


@pytest.fixture(autouse=True)
def _default_precision(monkeypatch):
    """This module tests the default itself: no ANIME_PRECISION (the suite's conftest sets fp32)."""
    monkeypatch.delenv("ANIME_PRECISION", raising=False)


@pytest.fixture(scope="module")
def v2() -> nn.Module:
    torch.manual_seed(0)
    return get_registry().build("animegan", "generator", variant="v2").eval()


def _pipe(net: nn.Module, precision: str = "auto") -> pl.TranslatePipeline:
    spec = get_registry().model("animegan")
    return pipeline_class(spec)(spec, {"generator": copy.deepcopy(net)}, device="cpu", precision=precision)


class WrongInBf16(nn.Module):
    """The generator, but its output is off by 0.1 (13/255) whenever it runs in bf16 (its input cast, on the CPU)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.stride = getattr(net, "stride", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 0.1 if x.dtype == torch.bfloat16 else self.net(x)


def _no_check(*_args, **_kwargs):
    raise AssertionError("the parity check ran again")


def test_auto_is_fp32_without_native_bf16_and_bit_identical(v2, monkeypatch):
    monkeypatch.setattr(auto, "precision_accelerated", lambda device, precision: precision == "fp32")
    monkeypatch.setattr(pr, "check", _no_check)  # nothing to check: fp32 is the reference
    pipe = _pipe(v2)
    assert pipe.precision == "fp32" and "no native bf16" in pipe.precision_choice
    photo = pr.parity_photo()[None]
    assert torch.equal(pipe.forward(photo), _pipe(v2, "fp32").forward(photo))


def test_auto_falls_back_to_fp32_when_bf16_is_too_far(v2, monkeypatch):
    monkeypatch.setattr(auto, "precision_accelerated", lambda device, precision: True)
    pipe = _pipe(WrongInBf16(v2))
    assert pipe.precision == "fp32"
    assert "too far from fp32" in pipe.precision_choice, pipe.precision_choice
    verdicts = list((anime_home() / "precision").glob("animegan-*-bf16.json"))
    assert len(verdicts) == 1 and json.loads(verdicts[0].read_text())["ok"] is False
    monkeypatch.setattr(pr, "check", _no_check)  # the failed verdict is cached too
    assert _pipe(WrongInBf16(v2)).precision == "fp32"


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (AVX512-BF16/AMX): auto is fp32 here")
def test_auto_runs_bf16_where_native_within_the_bounds_and_caches_the_verdict(v2, monkeypatch):
    pipe = _pipe(v2)
    assert pipe.precision == "bf16", pipe.precision_choice
    folder = anime_home() / "precision"
    (verdict,) = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert verdict["ok"] and 0 < verdict["mean"] <= 1 and verdict["p999"] <= 6
    photo = pr.parity_photo()[None]
    mean, p999 = pr.compare(_pipe(v2, "fp32").forward(photo), pipe.forward(photo))
    assert 0 < mean <= 1 and p999 <= 6  # bf16 really ran (not fp32), and within the bounds
    monkeypatch.setattr(pr, "check", _no_check)
    assert _pipe(v2).precision == "bf16"  # same weights: the cached verdict, no second check
    other = copy.deepcopy(v2)
    with torch.no_grad():
        next(other.parameters()).mul_(1.01)
    with pytest.raises(AssertionError, match="ran again"):
        _ = _pipe(other).precision  # other weights: checked anew


def test_cached_verdict_is_keyed_by_weights_and_survives_corruption(v2, monkeypatch):
    monkeypatch.setattr(auto, "precision_accelerated", lambda device, precision: True)
    calls = []
    monkeypatch.setattr(pr, "check", lambda pipe, p: calls.append(p) or pr.Verdict(p, True, 0.1, 1.0, 0.0))
    pipe = _pipe(v2)
    assert pipe.precision == "bf16" and calls == ["bf16"]
    path = pr.cache_path(pipe, "bf16")
    path.write_text("{not json")  # a torn or edited file is checked again, not trusted
    assert _pipe(v2).precision == "bf16" and calls == ["bf16", "bf16"]
    assert json.loads(path.read_text())["ok"] is True


def test_fp32_through_load_is_todays_exact_output(v2, tmp_path):
    weights = save_native(tmp_path / "v2.safetensors", {"generator": v2}, "animegan", {"variant": "v2"})
    from PIL import Image

    image = Image.open(__import__("io").BytesIO(_photo_png()))
    got = anime_core.load("animegan", weights=weights, device="cpu", precision="fp32")(image)
    want = _pipe(v2, "fp32")(image)
    assert np.array_equal(np.asarray(got), np.asarray(want))


def _photo_png() -> bytes:
    from io import BytesIO

    from anime_core.inference import io

    buf = BytesIO()
    io.to_image(pr.parity_photo().float() / 255).save(buf, "PNG")
    return buf.getvalue()


def test_anime_run_names_the_precision_once(v2, tmp_path, monkeypatch, capsys):
    from anime_core.inference.backends import openvino

    monkeypatch.setattr(auto, "precision_accelerated", lambda device, precision: precision == "fp32")
    monkeypatch.setattr(openvino, "available", lambda: False)  # torch, whose probe is patched
    weights = save_native(tmp_path / "v2.safetensors", {"generator": v2}, "animegan", {"variant": "v2"})
    photo = tmp_path / "in.png"
    photo.write_bytes(_photo_png())
    with pytest.raises(SystemExit) as done:
        main(["run", "animegan", "-w", str(weights), str(photo), "--size", "64", "-o", str(tmp_path / "out"),
              "--device", "cpu", "-q"])
    assert done.value.code in (0, None)
    err = capsys.readouterr().err
    assert err.count("precision") == 1 and "precision fp32 on torch (auto: this cpu has no native bf16)" in err, err


def test_auto_backend_is_torch_for_fp32_and_where_openvino_is_missing(monkeypatch):
    from anime_core.inference.backends import openvino

    assert pick_backend(None, "cpu", "fp32") == "torch"
    monkeypatch.setattr(openvino, "available", lambda: False)
    assert pick_backend(None, "cpu", "auto") == "torch"
    assert pick_backend("openvino", "cpu", "fp32") == "openvino"  # asked for: kept


# -- OpenVINO ----------------------------------------------------------------------------------
def _require_openvino() -> None:
    from anime_core.inference.backends import openvino

    if not openvino.available():
        pytest.skip("openvino (or onnx/onnxruntime, which export for it) is not installed: "
                    "pip install 'anime-core[openvino]'")


def test_openvino_fp32_matches_onnxruntime_and_auto_checks_its_own_bf16(v2, monkeypatch):
    _require_openvino()
    from anime_core.inference.backends import onnx_cache, onnx_export, onnx_runtime, openvino

    torch_pipe = _pipe(v2, "fp32")
    graph = onnx_cache.cached_export(torch_pipe)
    assert isinstance(graph, bytes)  # first time: exported (and verified on ONNX Runtime) ...
    assert onnx_cache.cached_export(_pipe(v2, "fp32")).is_file()  # ... then read from the export cache (a path)
    cls, spec = type(torch_pipe), torch_pipe.spec
    ov32 = openvino.openvino_pipeline(cls, spec, graph, "cpu", "fp32")
    ort = onnx_runtime.onnx_pipeline(cls, spec, graph, "cpu")
    x = pr.parity_photo()[None].float() / 255
    raw_ov, raw_ort = ov32._generate(x), ort._generate(x)
    assert raw_ov.shape == raw_ort.shape
    assert float((raw_ov - raw_ort).abs().max()) <= onnx_export.FP32_TOLERANCE * 10  # two fp32 engines, same graph
    photo = pr.parity_photo()[None]
    mean, p999 = pr.compare(torch_pipe.forward(photo), ov32.forward(photo))
    assert mean < 0.05 and p999 <= 1
    auto = openvino.openvino_pipeline(cls, spec, graph, "cpu", "auto")
    want = openvino.native_precision()
    assert auto.precision == want, auto.precision_choice
    if want != "fp32":
        assert "openvino" in pr.device_kind(auto)
        mean, p999 = pr.compare(ov32.forward(photo), auto.forward(photo))
        assert 0 < mean <= 1 and p999 <= 6


def test_load_default_backend_runs_openvino_where_it_pays(v2, tmp_path):
    _require_openvino()
    from anime_core.inference.backends import openvino

    weights = save_native(tmp_path / "v2.safetensors", {"generator": v2}, "animegan", {"variant": "v2"})
    pipe = anime_core.load("animegan", weights=weights, device="cpu")
    expect = "openvino" if openvino.native_precision() != "fp32" else "torch"
    assert getattr(pipe.generator, "backend", "torch") == expect
    exact = anime_core.load("animegan", weights=weights, device="cpu", precision="fp32")
    assert getattr(exact.generator, "backend", "torch") == "torch"


def test_onnxruntime_backend_takes_a_channels_last_generator(v2, tmp_path):
    """AnimeGAN v2 runs channels-last on the CPU; the export cache's digest must still read its tensors."""
    pytest.importorskip("onnxruntime")
    weights = save_native(tmp_path / "v2.safetensors", {"generator": v2}, "animegan", {"variant": "v2"})
    assert _pipe(v2, "fp32").channels_last  # the case: 1x1 conv weights whose last stride is not 1
    pipe = anime_core.load("animegan", weights=weights, device="cpu", backend="onnxruntime")
    assert pipe.precision == "fp32" and hasattr(pipe.generator, "session")


def test_bench_speed_prints_the_issue_26_ratios():
    import runpy
    from pathlib import Path

    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "bench_speed.py"))
    rows = [{"model": "animegan-v2", "size": 256, "method": m, "median_s": t}
            for m, t in [("eager", 2.0), ("pipeline", 1.5), ("openvino-f32", 0.6), ("openvino", 0.2),
                         ("load-default", 0.21)]]
    line = bench["ratios"](rows)
    assert "load-default / openvino default 1.05x (bar 1.1)" in line
    assert "load-default / openvino f32 0.35x" in line and "pipeline fp32 / eager 0.75x (bar 0.8)" in line
    assert bench["ratios"]([{"model": "x", "size": 1, "method": "eager", "median_s": 1.0}]) == ""


def _dtypes_seen(pipe: pl.Pipeline, run) -> set[tuple[str, torch.dtype]]:
    """(layer class, dtype) of every tensor that goes in or out of a leaf layer of the generator during ``run()``."""
    seen: set[tuple[str, torch.dtype]] = set()

    def record(module, args, out):
        seen.update((type(module).__name__, t.dtype) for t in (*args, out) if isinstance(t, torch.Tensor))

    hooks = [m.register_forward_hook(record) for m in pipe.generator.modules() if not list(m.children())]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_bf16_on_the_cpu_runs_every_layer_in_bf16_and_fp32_comes_back_exact(v2):
    """The nets are cast, not autocast: autocast ran pads and upsampling on fp32 copies (2.3x slower at 2048 px)."""
    pipe = _pipe(v2, "fp32")
    photo = pr.parity_photo()[None]
    exact = pipe.forward(photo)
    digest = pr.cache_path(pipe, "bf16")
    pipe.precision = "bf16"  # set directly: emulated where the CPU has no native bf16, the dtypes are the same
    low: list[torch.Tensor] = []
    seen = _dtypes_seen(pipe, lambda: low.append(pipe.forward(photo)))
    assert {dtype for _, dtype in seen} == {torch.bfloat16}, sorted(map(str, seen))
    mean, p999 = pr.compare(exact, low[0])
    assert 0 < mean <= 1 and p999 <= 6
    assert pr.cache_path(pipe, "bf16") == digest  # the verdict's key is the fp32 weights', whatever runs now
    copy.deepcopy(pipe.generator)  # a cast net (its input hook) can still be copied, as the export does
    pipe.precision = "fp32"
    assert {t.dtype for t in pipe.generator.state_dict().values()} == {torch.float32}
    assert torch.equal(pipe.forward(photo), exact)  # the very same fp32 values, not a round trip through bf16


def test_pipelines_on_the_same_nets_share_their_cast(v2):
    """A second pipeline over nets another one has cast to bf16 must not take the bf16 tensors for fp32 values."""
    photo = pr.parity_photo()[None]
    first = _pipe(v2, "fp32")
    exact = first.forward(photo)
    first.precision = "bf16"
    spec = get_registry().model("animegan")
    second = pipeline_class(spec)(spec, {"generator": first.generator}, device="cpu", precision="fp32")
    assert second.cast is first.cast  # one state for the shared tensors
    assert torch.equal(second.forward(photo), exact)
    mean, _ = pr.compare(exact, first.forward(photo))
    assert 0 < mean <= 1  # each call runs in its own pipeline's precision
    assert torch.equal(second.forward(photo), exact)


@pytest.mark.parametrize("model, options", [
    ("animegan", {"variant": "v1"}), ("cyclegan", {"arch": "resnet"}), ("cyclegan", {"arch": "unet"}),
    ("ae", {"variant": "vae"}), ("faststyle", {}), ("pixelsake-sr", {}), ("dcgan", {}),
])
def test_every_shipped_architecture_runs_in_bf16_on_the_cpu(model, options):
    """Each generator's own layers (instance and batch norms, attention, pixel shuffle) take bf16 weights and maps."""
    torch.manual_seed(0)
    reg = get_registry()
    spec = reg.model(model)
    pipe = pipeline_class(spec)(spec, {"generator": reg.build(model, "generator", **options).eval()}, device="cpu")
    if spec.kind == "generate":
        def run():
            return pipe.decode_latents(pipe.latents(2, 0))
    else:
        photo = pr.parity_photo()[None][..., :96, :128]

        def run():
            return pipe.forward(photo)
    exact = run()
    pipe.precision = "bf16"
    low: list[torch.Tensor] = []
    seen = _dtypes_seen(pipe, lambda: low.append(run()))
    assert torch.float32 not in {dtype for _, dtype in seen}, sorted(map(str, seen))
    assert low[0].shape == exact.shape and torch.isfinite(low[0]).all()
    assert (low[0] - exact).abs().mean() * 255 < 4  # random weights: bf16 rounding, not a broken layer
    pipe.precision = "fp32"
    assert torch.equal(run(), exact)


def test_the_vae_latent_walk_runs_in_bf16_on_the_cpu(tmp_path):
    """The ae pipeline calls ``encode``/``decode`` itself: their inputs are cast too."""
    from PIL import Image

    torch.manual_seed(0)
    reg = get_registry()
    spec = reg.model("ae")
    pipe = pipeline_class(spec)(spec, {"generator": reg.build("ae", "generator", variant="vae").eval()}, device="cpu")
    photo = Image.fromarray(pr.parity_photo().permute(1, 2, 0).numpy())
    exact = pipe.interpolate(photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), steps=2, size=96)
    pipe.precision = "bf16"
    low = pipe.interpolate(photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), steps=2, size=96)
    assert len(low) == 2 and all(torch.isfinite(f).all() for f in low)
    assert max(float((a - b).abs().mean()) for a, b in zip(low, exact, strict=True)) * 255 < 4
