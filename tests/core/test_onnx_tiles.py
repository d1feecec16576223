"""Exact tiles on ONNX Runtime and OpenVINO for graphs exported from our torch generators (issue 26).

The graph backend runs the segments of a cut export (:mod:`anime_core.inference.backends.onnx_segments`)
between the torch generator's norms, whose statistics the sweep gathers across tiles. What must
hold, tiled against untiled on the same backend, on the written 8-bit image: a mean difference of
at most 1/255 and a 99.9th percentile of at most 6/255. Generators are small, random weights.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import liven, make_image
from photos import PHOTOS

from anime_core.inference import io, pipeline
from anime_core.inference.backends import get, onnx_segments
from anime_core.inference.pipeline import PRECISIONS, TranslatePipeline
from anime_core.inference.tiling import spans

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

MEAN_LIMIT, P999_LIMIT = 1.0, 6.0  # /255
OPENVINO = importlib.util.find_spec("openvino") is not None
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(not OPENVINO,
                                                                               reason="openvino is not installed"))]


def _torch_pipe(registry, model: str, **options) -> TranslatePipeline:
    spec = registry.model(model)
    cls = spec.pipeline_class() or TranslatePipeline
    return cls(spec, {"generator": liven(registry.build(model, **options))}, device="cpu")


def _graph(pipe: TranslatePipeline, backend: str, cache) -> TranslatePipeline:
    options = {"precision": "fp32"} if backend == "openvino" else {}
    return get(backend).from_torch(pipe, type(pipe), "cpu", cache=cache, **options)


def _segments(pipe: TranslatePipeline) -> TranslatePipeline:
    """``pipe`` with its tiles on the graph backend's segments whatever the precision (OpenVINO runs them on torch)."""
    pipe.tile_source.on_torch = lambda precision: False
    return pipe


def _compare(pipe: TranslatePipeline, image: torch.Tensor, tile: int, min_tiles: int = 3) -> None:
    """Tiled vs untiled on ``pipe``'s backend; the tiles cut each side ``min_tiles`` times and ran its segments
    (or, where the backend runs tiles on torch, the torch generator and no segment)."""
    h, w = image.shape[-2:]
    full = pipe.translate(image, tile=0)
    plan = pipe._tile_plan(h, w, tile)
    net = pipe.tile_source.net(plan)
    assert isinstance(net, onnx_segments.SegmentedGenerator)
    on_torch = pipe.tile_source.on_torch(pipe.precision)
    conv = next(m for m in pipe.tile_source.pipe.generator.modules() if isinstance(m, torch.nn.Conv2d))
    calls: list[torch.dtype | None] = []

    def seen(_module: torch.nn.Module, args: tuple) -> None:
        if not args[0].is_meta:  # (the memory estimate runs the generator on meta tensors)
            calls.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)

    hook = conv.register_forward_pre_hook(seen)
    before = net.runs
    try:
        tiled = pipe.translate(image, tile=tile)
    finally:
        hook.remove()
    report = pipe.last_tiling
    assert report is not None and report.notes == [] and report.passes == 1, report
    per_side = [len(spans(n, t, plan.halo, plan.align)) for n, t in zip(plan.padded, plan.tile)]
    assert min(per_side) >= min_tiles, per_side
    graph_steps = sum(isinstance(s, onnx_segments.Segment) for s in net.split.steps)
    if on_torch:  # every tile ran the torch generator, in the graph's precision, and no segment ran
        assert net.runs == before and len(calls) == report.tiles, (net.runs - before, len(calls))
        assert set(calls) == {None if pipe.precision == "fp32" else PRECISIONS[pipe.precision]}, calls
    else:
        assert net.runs - before == report.tiles * graph_steps and calls == []  # every segment, on the backend
    diff = ((tiled.clamp(0, 1) * 255).round() - (full.clamp(0, 1) * 255).round()).abs()
    flat = diff.flatten()
    p999 = float(flat.kthvalue(int(0.999 * flat.numel())).values)
    assert float(flat.mean()) <= MEAN_LIMIT and p999 <= P999_LIMIT, (float(flat.mean()), p999, report)


@pytest.fixture(scope="module")
def animegan(tmp_path_factory):
    from anime_core.registry import get_registry

    return _torch_pipe(get_registry(), "animegan", variant="v2"), tmp_path_factory.mktemp("onnx")


@pytest.mark.parametrize("backend", BACKENDS)
def test_animegan_v2_scene_tiles_exactly_on_the_graph_backend(animegan, backend, monkeypatch):
    """GroupNorm(1) statistics and align_corners resizes across tiles, the convolutions on the backend."""
    monkeypatch.setattr(pipeline, "run_tiled", None)  # no blended (per-tile) path is taken
    pipe = _segments(_graph(animegan[0], backend, animegan[1]))
    _compare(pipe, io.to_tensor(make_image((320, 256), 7)), 96)


@pytest.mark.skipif(not OPENVINO, reason="openvino is not installed")
def test_openvino_tiles_run_on_torch_in_the_graphs_precision(animegan):
    """OpenVINO's cuts cost more than its convolutions: its tiles run on torch wherever torch has the precision."""
    from anime_core.inference.backends.openvino import _torch_runs
    from anime_core.inference.precision import precision_accelerated

    cpu = torch.device("cpu")
    assert _torch_runs(cpu, "fp32") and _torch_runs(cpu, "bf16") == precision_accelerated(cpu, "bf16")
    pipe = _graph(animegan[0], "openvino", animegan[1])
    assert pipe.tile_source.on_torch("fp32")
    _compare(pipe, io.to_tensor(make_image((320, 256), 7)), 96)
    assert animegan[0].precision == "fp32"  # the torch pipeline is back in its own precision


@pytest.mark.parametrize("backend", BACKENDS)
def test_animegan_v2_real_photo_tiles_exactly(animegan, backend):
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        pytest.skip(f"no real photos in {PHOTOS} (set ANIME_TEST_PHOTOS)")
    from PIL import Image

    with Image.open(photos[0]) as im:
        photo = io.to_tensor(im.convert("RGB").resize((301, 213), Image.Resampling.LANCZOS))  # sides off the grid
    _compare(_segments(_graph(animegan[0], backend, animegan[1])), photo, 96, min_tiles=3)


def test_the_cut_export_is_cached_and_a_third_party_graph_still_refuses_tiles(animegan, monkeypatch, tmp_path):
    torch_pipe, cache = animegan
    pipe = _graph(torch_pipe, "onnxruntime", cache)
    image = io.to_tensor(make_image((160, 128), 3))
    pipe.translate(image, tile=64)  # the cut export for this plan exists (made by the tests above, or now)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_segments, "cut_export", no_export)
    again = _graph(torch_pipe, "onnxruntime", cache)
    assert torch.equal(again.translate(image, tile=64), pipe.translate(image, tile=64))
    # the runner's estimate: the graph's own rate times the tiles' pixels of the torch plan
    assert again.tiling_cost(128, 160, 64) == torch_pipe.tiling_cost(128, 160, 64) > 1.0
    graph = next(p for p in cache.glob("*.onnx") if "-cut-" not in p.name)
    opened = get("onnxruntime").open(type(torch_pipe), torch_pipe.spec, graph, "cpu")
    with pytest.raises(io.BadImage, match="--tile 0"):  # no torch generator: no norms to gather, a clear refusal
        opened.translate(image, tile=64)


def test_cyclegan_resnet_with_self_attention(registry, tmp_path):
    """Instance norms and a self-attention computed on the whole (low-resolution) map."""
    pipe = _torch_pipe(registry, "cyclegan", arch="resnet", width=8, n_blocks=1, attention="blocks")
    _compare(_graph(pipe, "onnxruntime", tmp_path), io.to_tensor(make_image((320, 288), 7)), 96)


def test_cyclegan_unet_low_resolution_half_computed_whole(registry, tmp_path):
    """A U-Net: its low-resolution half is computed on the whole image (contexts), cut out of the graph too."""
    pipe = _torch_pipe(registry, "cyclegan", arch="unet", width=4, attention="down")
    _compare(_graph(pipe, "onnxruntime", tmp_path), io.to_tensor(make_image((768, 768), 7)), 256)
