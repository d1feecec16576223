"""Tiled inference equals the untiled result for every registered translate generator (issue 18).

Each generator is built small with random weights (zero-initialised layers such as self-attention's
``gamma`` are given weight, so attention really mixes positions), images are gradients with shapes
and noise whose tones vary across the frame, and tiles cut through them several times per side.
What must hold, on the written 8-bit image: a mean difference of at most 1/255 and a 99.9th
percentile of at most 6/255.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from helpers import liven, make_image
from photos import PHOTOS  # ../shared/photos beside the checkout, or $ANIME_TEST_PHOTOS
from torch import nn

from anime_core.inference import io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.tileplan import plan_tiles
from anime_core.inference.tiling import spans, sweep_need

MEAN_LIMIT, P999_LIMIT = 1.0, 6.0  # /255


def _pipeline(registry, model: str, gen: nn.Module) -> TranslatePipeline:
    spec = registry.model(model)
    cls = spec.pipeline_class() or TranslatePipeline
    return cls(spec, {"generator": liven(gen)}, device="cpu")


def _compare(pipe: TranslatePipeline, size: tuple[int, int] | torch.Tensor, tile: int, min_tiles: int = 3) -> None:
    """Tiled vs untiled on the 8-bit output, and proof that the tiles cut the image ``min_tiles`` times per side.

    ``size``: (w, h) of a synthetic scene, or a (3, H, W) uint8 image. The tiles run in one sweep,
    each through as many segments as the plan has global calls, plus one; the bottom rows (where
    a side that is no multiple of the downsampling used to go wrong) hold the same limit.
    """
    image = io.to_tensor(make_image(size, 7)) if isinstance(size, tuple) else size
    h, w = image.shape[-2:]
    full = pipe.translate(image, tile=0)
    tiled = pipe.translate(image, tile=tile)
    report = pipe.last_tiling
    assert report is not None and report.notes == [], report
    plan = pipe._tile_plan(h, w, tile)
    per_side = [len(spans(n, t, plan.halo, plan.align)) for n, t in zip(plan.padded, plan.tile)]
    assert min(per_side) >= min_tiles, per_side
    assert report.passes == 1 and report.segments == len(plan.norms) + len(plan.contexts) + 1, report
    diff = ((tiled.clamp(0, 1) * 255).round() - (full.clamp(0, 1) * 255).round()).abs()
    flat = diff.flatten()
    p999 = float(flat.kthvalue(int(0.999 * flat.numel())).values)
    assert float(flat.mean()) <= MEAN_LIMIT and p999 <= P999_LIMIT, (float(flat.mean()), p999, report)
    assert float(diff[:, -8:].mean()) <= MEAN_LIMIT, float(diff[:, -8:].mean())


def _photo(index: int = 0, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A shared real photo (1536 px wide) as (3, H, W) uint8, at full size or resized to (w, h)."""
    from PIL import Image

    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        pytest.skip(f"no real photos in {PHOTOS} (set ANIME_TEST_PHOTOS)")
    img = Image.open(photos[index]).convert("RGB")
    return io.to_tensor(img if size is None else img.resize(size, Image.Resampling.LANCZOS))


def test_animegan_v2_groupnorm(registry):
    """AnimeGANv2: GroupNorm(1) statistics over C, H, W, and align_corners resizes of the whole map."""
    _compare(_pipeline(registry, "animegan", registry.build("animegan", variant="v2")), (320, 256), 96)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_moments_of_a_core_match_float64_sums_in_every_layout(dtype, channels_last):
    """The sweep's per-group (count, sum, sum of squares) of a tile's core: float32 rows, bf16, channels-last."""
    from anime_core.inference.norms import moments

    torch.manual_seed(0)
    x = (torch.randn(1, 8, 37, 53) * 2 + 1).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    core = x[0, :, 3:30, 5:50].double()
    want = torch.stack([torch.full((4,), 2 * 27 * 45.0, dtype=torch.float64), core.sum((1, 2)).view(4, 2).sum(1),
                        core.square().sum((1, 2)).view(4, 2).sum(1)])
    got = moments(x, 4, (slice(3, 30), slice(5, 50)))
    assert got.dtype == torch.float64 and got.shape == (3, 4)
    assert float(((got - want).abs() / want.abs()).max()) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_one_group_moments_of_a_block_of_memory_sum_it_flat(dtype, channels_last, monkeypatch):
    """GroupNorm(1) over a core that is one run of memory (a full-width strip, or a whole map): flat chunks."""
    from anime_core.inference import norms

    torch.manual_seed(0)
    x = (torch.randn(1, 8, 37, 53) * 3 + 2).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    rows = slice(4, 31) if channels_last else slice(None)  # a channels-last strip's rows are one run too
    core = x[0, :, rows, :].double()
    want = torch.tensor([[core.numel()], [core.sum()], [core.square().sum()]], dtype=torch.float64)
    seen = []
    flat = norms._flat_sums
    monkeypatch.setattr(norms, "_flat_sums", lambda v: seen.append(v.numel()) or flat(v, chunk=1000))  # 3+ chunks
    got = norms.moments(x, 1, (rows, slice(None)))
    assert seen == [core.numel()] and got.shape == (3, 1) and got.dtype == torch.float64
    assert float(((got - want).abs() / want.abs()).max()) < 1e-6
    assert norms._block(x[0, :, 3:30, 5:50]) is None  # a square tile's core is not one run: per channel


def test_the_lean_trace_donates_convolution_outputs_that_only_a_norm_reads(registry):
    """The tiles' norms write into their input where nothing else reads it: no fresh map per norm and tile."""
    import torch.nn.functional as F

    from anime_core.inference.norms import NormSpec, donate, norm_spec, normalize
    from anime_core.inference.tiling import lean

    traced = lean(registry.build("animegan", variant="v2"))
    nodes = list(traced.graph.nodes)
    norms = [n for n in nodes if n.op == "call_module" and norm_spec(traced.get_submodule(n.target)) is not None]
    donated = [n for n in nodes if n.target is donate]
    assert len(norms) == 24 and len(donated) == 24
    assert all(nodes[nodes.index(d) + 1] in norms and d.args[0] is nodes[nodes.index(d) + 1].args[0] for d in donated)

    spec = NormSpec(1, 1e-5, torch.rand(8), torch.rand(8))
    mean, var = torch.tensor([0.3]), torch.tensor([2.0])
    x = torch.randn(1, 8, 6, 5).contiguous(memory_format=torch.channels_last)
    want = F.batch_norm(x, mean.repeat(8), var.repeat(8), spec.weight, spec.bias, False, 0.0, 1e-5)
    donate(x)
    got = normalize(x, spec, mean, var)
    assert got.data_ptr() == x.data_ptr() and torch.equal(got, want)  # the same kernel, into x
    half = torch.randn(1, 8, 6, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = normalize(half, spec, mean, var)
    want = F.batch_norm(half.float(), mean.repeat(8), var.repeat(8), spec.weight, spec.bias, False, 0.0, 1e-5)
    assert got.dtype == torch.bfloat16 and got.data_ptr() != half.data_ptr() and torch.equal(got, want.bfloat16())
    kept = half.clone()
    donate(half)  # a donated bf16 map: normalised in place, to the same values
    got = normalize(half, spec, mean, var)
    assert got.data_ptr() == half.data_ptr() and torch.equal(got, want.bfloat16())
    assert not torch.equal(kept, half)


def test_the_lean_trace_runs_activations_of_norm_outputs_in_place_and_computes_the_same(registry):
    """An activation whose input only it reads (a norm's output) overwrites it: one fresh map less per layer."""
    import torch.nn.functional as F

    from anime_core.inference.norms import norm_spec
    from anime_core.inference.tiling import lean

    torch.manual_seed(0)
    gen = registry.build("animegan", variant="v2").eval()
    traced = lean(gen)
    nodes = list(traced.graph.nodes)
    in_place = [n for n in nodes if n.target is F.leaky_relu_]
    left = [n for n in nodes if n.op == "call_module" and isinstance(traced.get_submodule(n.target), nn.LeakyReLU)]
    assert len(in_place) == 20 and not [n for n in left if norm_spec(traced.get_submodule(n.args[0].target))]
    assert all(n.args[0].op == "call_module" and norm_spec(traced.get_submodule(n.args[0].target)) for n in in_place)
    x = torch.rand(1, 3, 64, 72) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(traced(x), gen(x))  # the same kernel in place: bit-identical


def test_a_tile_resizes_like_the_whole_map_in_bf16():
    """bf16 autocast (what ``--precision auto`` runs on CPUs with native bf16): a tile's align_corners
    resize samples the whole map's positions in float32; a bf16 grid was off by up to 2 px in a
    600 px map (2048 px tiles came out 1.5/255 off the untiled output)."""
    import torch.nn.functional as F

    from anime_core.inference.tracing import TileGeometry

    torch.manual_seed(0)
    whole = torch.rand(1, 4, 150, 300).to(torch.bfloat16)  # a map at half the image's size
    want = F.interpolate(whole.float(), size=(300, 600), mode="bilinear", align_corners=True)
    top, left, height, width = 40, 400, 64, 96  # a tile of the 300x600 image
    tile = whole[..., top // 2: (top + height) // 2, left // 2: (left + width) // 2]
    with torch.autocast("cpu", dtype=torch.bfloat16), TileGeometry((top, left), (height, width), (300, 600),
                                                                   [((150, 300), (300, 600))]):
        got = F.interpolate(tile, size=(height, width), mode="bilinear", align_corners=True)
    expect = want[..., top: top + height, left: left + width]
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # the edges sample the halo, which tiles refresh
    assert float((got.float() - expect)[inner].abs().max()) < 0.02  # bf16 rounding of values in [0, 1]
    assert got.dtype == torch.bfloat16  # as autocast would give the next layer


def test_a_bf16_tile_resize_converts_a_few_channels_at_a_time(monkeypatch):
    """A bf16 map is resampled in float32 channel by channel into a bf16 output (no whole float32 copy in or out):
    the same values as one float32 pass, in the map's layout."""
    import torch.nn.functional as F

    from anime_core.inference import tracing

    torch.manual_seed(0)
    tile = torch.rand(1, 6, 40, 52).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

    def resize() -> torch.Tensor:
        with tracing.TileGeometry((40, 400), (80, 104), (300, 600), [((150, 300), (300, 600))]):
            return F.interpolate(tile, size=(80, 104), mode="bilinear", align_corners=True)

    whole = resize()
    chunks = []
    real = F.grid_sample
    monkeypatch.setattr(F, "grid_sample", lambda x, *a, **k: chunks.append(x.shape[1]) or real(x, *a, **k))
    monkeypatch.setattr(tracing, "RESIZE_CHUNK_BYTES", 2 * 4 * 80 * 104)  # two channels' float32 output
    got = resize()
    assert chunks == [2, 2, 2] and torch.equal(got, whole)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow  # ~9 s on a loaded 2-core CPU: per-channel statistics of random weights converge slowest
def test_animegan_v1_instance_norm(registry):
    """AnimeGAN v1 (one inverted residual block instead of eight, to stay fast): per-channel instance norm."""
    from anime_plugin_animegan.generator import GeneratorV1

    _compare(_pipeline(registry, "animegan", GeneratorV1(n_blocks=1)), (256, 192), 96)


@pytest.mark.parametrize("attention", ["none", "down", "up", pytest.param("both", marks=pytest.mark.slow)])
def test_cyclegan_unet(registry, attention):
    """The U-Net's receptive field spans the image: its low-resolution half is computed whole."""
    gen = registry.build("cyclegan", arch="unet", width=4, attention=attention)
    _compare(_pipeline(registry, "cyclegan", gen), (768, 768), 256)


@pytest.mark.parametrize("attention", ["none", "blocks"])
def test_cyclegan_resnet(registry, attention):
    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=1, attention=attention)
    _compare(_pipeline(registry, "cyclegan", gen), (320, 288), 96)


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_cyclegan_pix2pix_unet(registry, norm):
    gen = registry.build("cyclegan", arch="pix2pix-unet", width=4, n_downs=8, norm=norm)
    _compare(_pipeline(registry, "cyclegan", gen), (768, 768), 256)


@pytest.mark.parametrize("variant", ["lab", "rgb", "skip", "vae"])
def test_ae(registry, variant):
    gen = registry.build("ae", variant=variant, widths=[8, 16, 32], encoding_filters=16, latent_channels=8)
    _compare(_pipeline(registry, "ae", gen), (256, 192), 96)


def test_pixelsake_sr(registry):
    gen = registry.build("pixelsake-sr", width=8, num_blocks=2)
    _compare(_pipeline(registry, "pixelsake-sr", gen), (160, 128), 40)


def test_example_plugin_faststyle(registry):
    gen = registry.build("faststyle", base_channels=8, num_res_blocks=1)
    _compare(_pipeline(registry, "faststyle", gen), (320, 256), 128)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_full_width_strip_resizes_its_width_with_the_kernel_and_its_rows_at_the_whole_maps_positions(
        monkeypatch, dtype):
    """A strip (a tile as wide as the image) resizes like the whole map without ``grid_sample``: the width by
    the library's kernel on whole rows, the rows blended with the untiled kernel's own float32 weights, a few
    rows at a time; a bf16 map is rounded once, as untiled."""
    import torch.nn.functional as F

    from anime_core.inference import tracing

    torch.manual_seed(0)
    whole = torch.rand(1, 6, 75, 150).to(dtype).contiguous(memory_format=torch.channels_last)  # 1/4 of 300x600
    want = F.interpolate(whole, size=(150, 300), mode="bilinear", align_corners=True)
    top, height = 96, 104  # image rows of the strip
    strip = whole[..., top // 4: (top + height) // 4, :]
    monkeypatch.setattr(F, "grid_sample", None)  # not called
    monkeypatch.setattr(tracing, "ROW_CHUNK_BYTES", 4 * 6 * 300 * 5)  # five float32 rows per kernel call
    with tracing.TileGeometry((top, 0), (height, 600), (300, 600), [((75, 150), (150, 300))]):
        got = F.interpolate(strip, size=(height // 2, 300), mode="bilinear", align_corners=True)
    expect = want[..., top // 2: (top + height) // 2, :]
    inner = (slice(None), slice(None), slice(1, -1))  # the edge rows sample the strip's halo, which tiles refresh
    assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:
        assert float((got - expect)[inner].abs().max()) < 1e-6
    else:  # one bf16 step at most, and rarely (float rounding order)
        differ = got[inner] != expect[inner]
        assert float(differ.float().mean()) < 0.01 and float((got - expect)[inner].float().abs().max()) <= 2 ** -8


@pytest.mark.parametrize("pad", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 1, 0, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_strip_resizes_into_its_padded_map_exactly_as_resize_then_reflection_pad(pad, dtype):
    """``resize_reflect``: a strip writes its resized rows into the padded map and reflects the borders in place,
    bit for bit what the resize followed by ``F.pad(..., "reflect")`` gives (no unpadded copy); anywhere else the
    two calls run as they are."""
    import torch.nn.functional as F

    from anime_core.inference import tracing

    torch.manual_seed(0)
    whole = torch.rand(1, 6, 75, 150).to(dtype).contiguous(memory_format=torch.channels_last)
    strip = whole[..., 24: 50, :]

    def geometry() -> tracing.TileGeometry:
        return tracing.TileGeometry((96, 0), (104, 600), (300, 600), [((75, 150), (150, 300))])

    with geometry():
        want = F.pad(F.interpolate(strip, size=(52, 300), mode="bilinear", align_corners=True), pad, mode="reflect")
    with geometry():
        got = tracing.resize_reflect(strip, (52, 300), None, pad)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want)
    plain = F.pad(F.interpolate(whole, size=(150, 300), mode="bilinear", align_corners=True), pad, mode="reflect")
    assert torch.equal(tracing.resize_reflect(whole, (150, 300), None, pad), plain)
    y = torch.rand(2, 3, 9, 11)
    assert torch.equal(tracing.reflect_borders(F.pad(y, pad), pad), F.pad(y, pad, mode="reflect"))


@pytest.mark.parametrize(("pad", "kernel", "stride", "dilation"),
                         [((1, 1, 1, 1), 3, 1, 1), ((3, 3, 3, 3), 7, 1, 1), ((2, 1, 0, 3), 3, 2, 1),
                          ((2, 2, 2, 2), 3, 1, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_strip_convolves_its_padded_map_band_by_band(monkeypatch, pad, kernel, stride, dilation, dtype):
    """``resize_reflect_conv``: a strip makes its padded, resized map a band of rows at a time and convolves each
    band into its rows of the output: what the convolution of the whole padded map gives, while no tensor as large
    as the padded map is ever made; anywhere else the calls run as they are."""
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode

    from anime_core.inference import tracing

    torch.manual_seed(0)
    whole = torch.rand(1, 6, 75, 150).to(dtype).contiguous(memory_format=torch.channels_last)
    strip = whole[..., 24: 50, :]
    weight, bias = torch.randn(2, 6, kernel, kernel).to(dtype), torch.randn(2).to(dtype)
    conv = (weight, bias, (stride, stride), (dilation, dilation), 1)

    def geometry() -> tracing.TileGeometry:
        return tracing.TileGeometry((96, 0), (104, 600), (300, 600), [((75, 150), (150, 300))])

    class Largest(TorchDispatchMode):
        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tracing.tensors(out):
                self.most = max(self.most, tracing.nbytes(t))
            return out

    with geometry():
        padded_map = tracing.resize_reflect(strip, (52, 300), None, pad)
    want = F.conv2d(padded_map, weight, bias, stride, 0, dilation)
    row_bytes = padded_map.shape[1] * padded_map.shape[3] * padded_map.element_size()
    monkeypatch.setattr(tracing, "ROW_CHUNK_BYTES", 9 * row_bytes)  # bands of a few rows
    with geometry(), Largest() as seen:
        got = tracing.resize_reflect_conv(strip, (52, 300), None, pad, *conv)
    assert got.shape == want.shape and got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(got.float(), want.float(), rtol=tolerance, atol=tolerance)
    assert seen.most < tracing.nbytes(padded_map) / 2 and seen.most <= max(tracing.nbytes(got), 16 * row_bytes)
    plain = F.conv2d(F.pad(F.interpolate(whole, size=(150, 300), mode="bilinear", align_corners=True), pad,
                           mode="reflect"), weight, bias, stride, 0, dilation)
    assert torch.equal(tracing.resize_reflect_conv(whole, (150, 300), None, pad, *conv), plain)


def test_the_lean_trace_resizes_straight_into_the_padded_map_convolves_it_in_bands_and_holds_less(registry):
    """AnimeGAN v2's decoder resizes, reflection-pads, and convolves (the up-sampled and the padded map are read by
    nothing else): the trace calls ``resize_reflect_conv`` instead, with the same output. A 2048 px strip's largest
    segment then holds two 64-channel maps (block_e's next pad and convolution), where the resize into the padded
    map held the 128-channel up-sampled map beside the convolution's output, and the plain trace held it twice
    (unpadded and padded)."""
    import torch.nn.functional as F

    from anime_core.inference import tiling, tracing

    torch.manual_seed(0)
    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    gen = pipe.generator
    traced = tiling.lean(gen)
    fused = [n for n in traced.graph.nodes if n.target is tracing.resize_reflect_conv]
    assert [str(n.args[4].target) for n in fused] == ["block_d.0.1.weight", "block_e.0.1.weight"]
    assert not [n for n in traced.graph.nodes if n.target in (F.interpolate, tracing.resize_reflect)]
    x = torch.rand(1, 3, 64, 72) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(traced(x), gen(x))
    plan = pipe._tile_plan(1451, 2048, 1024)
    assert plan.tile == (512, 2048)  # strips
    calls = tiling._calls(plan)
    live = tiling.live_bytes(tiling.lean(gen, calls), plan)
    modules = dict(gen.named_modules())
    held = []
    for fusions in ((), (tiling._fuse_resize_reflect,)):
        graph = tiling._Tracer(calls).trace(gen)
        tiling._donate_dead_norm_inputs(graph, modules)
        tiling._activate_norm_outputs_in_place(graph, modules)
        for fuse in fusions:
            fuse(graph, modules)
        held.append(tiling.live_bytes(torch.fx.GraphModule(gen, graph), plan))
    upsampled = 128 * 512 * 2048 * 4  # float32
    plain, padded = held
    assert live is not None and plain is not None and padded is not None
    assert plain.peak >= 2 * upsampled and padded.peak >= 1.45 * upsampled and live.peak <= 1.05 * upsampled
    assert live.paused == plain.paused


@pytest.mark.parametrize(("length", "tile", "halo", "align", "equal"),
                         [(1451, 512, 8, 4, True), (1451, 288, 8, 4, True), (2048, 1024, 8, 4, True),
                          (1024, 256, 8, 4, True), (768, 256, 24, 8, True), (300, 96, 8, 4, True),
                          (1001, 100, 40, 8, False)])  # halos of 40 px around cores of 20: as even as alignment allows
def test_tiles_along_a_side_are_equal_but_the_last_which_is_no_larger(length, tile, halo, align, equal):
    """Cores partition the side at multiples of the alignment, each tile is its core plus the halo inside the image,
    and every tile but the last spans the same pixels (the last no more): a tile's maps then fit the blocks the tile
    before it freed. The number of tiles, and so the recomputed halo, is what it was."""
    import itertools
    import math

    from anime_core.inference.tiling import spans

    found = spans(length, tile, halo, align)
    assert len(found) == max(1, math.ceil((length - 2 * halo) / max(align, tile - 2 * halo)))
    assert found[0].core_start == 0 and found[-1].core_stop == length
    assert all(a.core_stop == b.core_start and b.core_start % align == 0 for a, b in itertools.pairwise(found))
    assert all(s.start == max(0, s.core_start - halo) and s.stop == min(length, s.core_stop + halo) for s in found)
    extents = [s.stop - s.start for s in found]
    if equal:
        assert len(set(extents[:-1])) == 1 and extents[-1] <= extents[0] and extents[0] % align == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_reflection_pads_go_into_blocks_of_a_rounded_size_with_the_same_values(channels_last):
    """``reflect_pad``: the padded copy of a tile's map, bit for bit ``F.pad(..., "reflect")``, in a block rounded
    up to a sixteenth of its power of two, so copies a few pixels apart in size reuse each other's blocks."""
    import torch.nn.functional as F

    from anime_core.inference import tracing

    x = torch.rand(1, 6, 37, 53).bfloat16()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for pad in ((1, 1, 1, 1), (3, 3, 3, 3), (0, 2, 1, 0)):
        got = tracing.reflect_pad(x, pad)
        assert torch.equal(got, F.pad(x, pad, mode="reflect"))
        assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    a = tracing.classed_empty((1, 64, 496, 2054), torch.bfloat16, torch.device("cpu"), True)
    b = tracing.classed_empty((1, 64, 502, 2054), torch.bfloat16, torch.device("cpu"), True)
    need = 64 * 502 * 2054 * 2
    assert a.untyped_storage().nbytes() == b.untyped_storage().nbytes() >= need  # one size class
    assert b.untyped_storage().nbytes() <= need * 17 / 16


def test_the_lean_trace_pads_every_reflection_pad_through_reflect_pad(registry):
    """No reflection pad module is left in AnimeGAN v2's lean trace: resizes that feed one (and the convolution
    after it) are fused, the other pads are ``reflect_pad`` calls; the output stays bit-identical."""
    from anime_core.inference import tiling, tracing

    torch.manual_seed(0)
    gen = registry.build("animegan", variant="v2").eval()
    traced = tiling.lean(gen)
    nodes = list(traced.graph.nodes)
    assert not [n for n in nodes if n.op == "call_module" and isinstance(traced.get_submodule(n.target),
                                                                          nn.ReflectionPad2d)]
    pads = sum(isinstance(m, nn.ReflectionPad2d) for m in gen.modules())
    assert len([n for n in nodes if n.target in (tracing.reflect_pad, tracing.resize_reflect_conv)]) == pads
    x = torch.rand(1, 3, 64, 72) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(traced(x), gen(x))


def test_a_traced_generator_steps_its_tiles_in_the_calling_thread(registry):
    """The lean trace's tiles run node by node in the sweeping thread (tiles taking turns across worker threads ran
    their layers 1.6x slower), to the output of the same sweep with the tiles in threads (the eager generator)."""
    import threading

    from anime_core.inference.tiling import run_faithful

    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    image = io.to_tensor(make_image((256, 192), 4))
    names: set[str] = set()

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if not out.is_meta:  # (meta: the plan's shapes)
            names.add(threading.current_thread().name)

    hooks = [m.register_forward_hook(record) for m in pipe.generator.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            stepped, report = run_faithful(pipe, image, 64)
            assert names == {threading.current_thread().name} and report.tiles >= 9
            names.clear()
            threaded, _ = run_faithful(pipe, image, 64, net=pipe.generator)
            assert names == {"anime-tile"}
    finally:
        for hook in hooks:
            hook.remove()
    assert float((stepped - threaded).abs().max()) < 1e-5  # the sums' float rounding (threads per sum) apart


def test_a_generator_with_aligned_resizes_is_tiled_in_full_width_strips(registry):
    """AnimeGAN v2's align_corners resizes: its tiles are full-width strips of about a tile's area where the image
    is at most 4 tiles wide, and still give the untiled output on a real photo; a net without such resizes, and an
    image too wide, keep square tiles."""
    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    photo = _photo(0, (512, 384))
    plan = pipe._tile_plan(384, 512, 256)
    assert plan.geometry and plan.tile[1] == plan.padded[1] == 512 and plan.tile[0] * 512 <= 256 * 256
    assert len(spans(plan.padded[0], plan.tile[0], plan.halo, plan.align)) >= 3
    _compare(pipe, photo, 256, min_tiles=1)
    assert pipe._tile_plan(256, 4096, 256).tile == (256, 256)
    cyclegan = _pipeline(registry, "cyclegan", registry.build("cyclegan", arch="resnet", width=8, n_blocks=1))
    assert cyclegan._tile_plan(384, 512, 256).tile == (256, 256)
    assert pipe._tile_plan(384, 640, 256).tile == (100, 640)  # 12 halos high
    assert pipe._tile_plan(384, 640, 160).tile == (160, 160)  # a strip would be under 8 halos high


@pytest.mark.parametrize("source", ["scene", "photo"])
def test_animegan_v2_sides_off_the_downsampling_grid(registry, source):
    """301x213: neither side a multiple of 4, as 1493 rows were in issue 26 (the error grew toward the bottom).

    The tiled layout keeps the untiled padding: the last tile ends at the image's edge, unaligned,
    and the align_corners resizes sample the whole maps' own sizes.
    """
    image = io.to_tensor(make_image((301, 213), 5)) if source == "scene" else _photo(1, (301, 213))
    _compare(_pipeline(registry, "animegan", registry.build("animegan", variant="v2")), image, 64)


@pytest.mark.parametrize("source", ["scene", "photo"])
def test_animegan_v2_tiles_in_bf16_on_the_cpu(registry, source):
    """bf16 as ``--precision auto`` runs it on CPUs with native bf16 (the nets cast, not autocast): tiles
    run every layer in bf16 too and stay within the limits of the untiled bf16 output."""
    image = io.to_tensor(make_image((301, 213), 5)) if source == "scene" else _photo(1, (301, 213))
    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    pipe.precision = "bf16"  # set directly: emulated where the CPU has no native bf16
    dtypes: set[torch.dtype] = set()

    def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if not out.is_meta:  # (meta: the plan's shapes)
            dtypes.add(out.dtype)

    hooks = [m.register_forward_hook(record) for m in pipe.generator.modules() if isinstance(m, nn.Conv2d)]
    try:
        _compare(pipe, image, 64)
    finally:
        for hook in hooks:
            hook.remove()
    assert dtypes == {torch.bfloat16}
    need = sweep_need(pipe, pipe._tile_plan(213, 301, 64))
    pipe.precision = "fp32"
    assert 0.4 < need / sweep_need(pipe, pipe._tile_plan(213, 301, 64)) < 0.6  # bf16 maps: half the bytes


def test_real_photo_at_full_size_in_default_tiles(registry):
    """A shared photo at full size (1536 px wide) in the default 1024 px tiles, CycleGAN ResNet (instance norms)."""
    from anime_core.inference.modes import DEFAULT_TILE

    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=1)
    _compare(_pipeline(registry, "cyclegan", gen), _photo(0), DEFAULT_TILE, min_tiles=2)


def test_progress_and_cost_count_tiles_segments_and_halos(registry):
    """The callback sees every tile's every segment in order; the cost is the tiles' pixels per image pixel."""
    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    image = io.to_tensor(make_image((256, 192), 2))
    calls: list[tuple[int, int]] = []
    pipe.translate(image, 64, progress=lambda done, total: calls.append((done, total)))
    report = pipe.last_tiling
    total = report.tiles * report.segments
    assert report.segments == 25 and calls == [(i, total) for i in range(1, total + 1)]  # 24 GroupNorms
    assert report.halo <= 8  # one segment's reach, not the network's (52 px)
    assert pipe.tiling_cost(192, 256, 64) == report.cost and 1.0 < report.cost < 1.8


def test_the_estimate_of_a_tiled_photo_is_within_1_5x(registry):
    """The run's estimate counts the tiles' pixels: within 1.5x of the time a 1536 px photo takes (issue 24).

    Best of three for both the calibration and the run: other processes share the CPU.
    """
    from anime_core.runner.eta import Eta

    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=1)
    pipe = _pipeline(registry, "cyclegan", gen)
    image = _photo(0)
    h, w = image.shape[-2:]
    eta = Eta(pipe, lambda line: None, tile=512)
    estimates = []
    for _ in range(3):
        eta.rate = eta._calibrate()
        estimates.append(eta.seconds(w, h, tiled=True))
    estimate = min(estimates)  # the quietest calibration, as the quietest run below
    measured = []
    for _ in range(3):
        start = time.perf_counter()
        pipe.translate(image, 512)
        measured.append(time.perf_counter() - start)
    assert pipe.last_tiling.tiles >= 6 and pipe.tiling_cost(h, w, 512) > 1.0
    assert min(measured) / 1.5 <= estimate <= min(measured) * 1.5, (estimate, measured)


def test_a_sweep_over_the_memory_budget_takes_statistics_from_a_shrunk_copy(registry, monkeypatch):
    """The paused tiles hold the image's live maps. Above the budget, a shrunk copy's sweep gives the
    statistics and the tiles run through with them, one at a time: close, not exact, and said so."""
    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    image = _photo(2, (576, 416))
    full = pipe.translate(image, tile=0)
    monkeypatch.setenv("ANIME_MAX_MEMORY", "64M")
    tiled = pipe.translate(image, tile=256)  # a quarter tile (64 px) holds the network's 52 px reach
    report = pipe.last_tiling
    assert "shrunk" in report.notes[-1] and "memory budget" in report.notes[-1], report
    assert report.halo > 8  # the whole network's reach: no halo refresh without stopping at the norms
    diff = ((tiled.clamp(0, 1) * 255).round() - (full.clamp(0, 1) * 255).round()).abs()
    assert float(diff.mean()) <= 3 * MEAN_LIMIT, float(diff.mean())


def test_every_registered_translate_model_is_covered(registry):
    """A new translate model in a first-party or example plugin needs its case here."""
    covered = {"animegan", "cyclegan", "ae", "pixelsake-sr", "faststyle"}
    translate = {name for name, spec in registry.models.items() if spec.kind == "translate"}
    assert translate <= covered, translate - covered


def test_plan_finds_the_global_layers_without_running_the_net(registry):
    """Shapes only: GroupNorm calls gather statistics, attention is computed whole, the halo covers the reach."""
    gen = registry.build("cyclegan", arch="resnet", width=8, n_blocks=2, attention="blocks")
    plan = plan_tiles(gen, 3, torch.float32, (1000, 1000), 256, 4)
    assert len(plan.norms) == 9  # 3 encoder, 2 x 2 in the blocks, 2 decoder: all instance norms
    assert list(plan.contexts) == [("attention", 0)] and plan.contexts[("attention", 0)].boundary
    assert plan.radius <= plan.halo < 256 // 4 and plan.padded == (1000, 1000) and plan.align == 4
    # an image too large to hold the attention map whole: per tile, and said so
    big = plan_tiles(gen, 3, torch.float32, (16384, 16384), 256, 4)
    assert not big.contexts and "self-attention" in big.notes[0]


def test_tile_zero_and_small_images_run_untiled(registry):
    assert TranslatePipeline.tile_for(4000, 3000, 0) is None
    assert TranslatePipeline.tile_for(4000, 3000) == 1024  # 12 MP: automatic
    assert TranslatePipeline.tile_for(1000, 800) is None and TranslatePipeline.tile_for(1000, 800, 512) == 512
    assert TranslatePipeline.tile_for(500, 400, 512) is None


def test_a_generator_with_norms_that_cannot_be_traced_refuses_tiles(registry):
    """No per-tile norms on any path: an untraceable generator with norms says to run it whole."""

    class OpaqueNorm(nn.Module):
        stride = 1

        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.InstanceNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(torch.from_numpy(x.cpu().numpy()).to(x.device)).tanh()

    pipe = _pipeline(registry, "faststyle", OpaqueNorm())
    with pytest.raises(io.BadImage, match="--tile 0"):
        pipe.translate(io.to_tensor(make_image((100, 80), 1)), tile=40)


def test_a_generator_that_cannot_be_traced_falls_back_to_blended_tiles(registry):
    class Opaque(nn.Module):  # reads values, as an ONNX Runtime session does: meta tensors have none
        stride = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(x.cpu().numpy()).to(x.device).tanh()

    pipe = _pipeline(registry, "faststyle", Opaque())
    image = io.to_tensor(make_image((100, 80), 1))
    out = pipe.translate(image, tile=40)
    assert "could not be traced" in pipe.last_tiling.notes[0]
    assert torch.allclose(out, pipe.translate(image, tile=0), atol=1e-5)


def _save_cyclegan(registry, path):
    from anime_core.weights.files import save_native

    options = {"arch": "resnet", "width": 8, "n_blocks": 1}
    return save_native(path, {"generator": liven(registry.build("cyclegan", **options))}, "cyclegan", options)


def test_anime_run_says_why_it_tiles_and_tile_zero_turns_it_off(registry, tmp_path, monkeypatch, capsys):
    """Automatic tiling (here above 0.05 MP, in 96 px tiles) is one announced line; the file equals the untiled one."""
    import numpy as np
    from PIL import Image

    from anime_core.cli import main
    from anime_core.inference import pipeline

    monkeypatch.setattr(pipeline, "AUTO_TILE_PIXELS", 50_000)
    monkeypatch.setattr(pipeline, "DEFAULT_TILE", 96)
    monkeypatch.setattr("anime_core.runner.batches.AUTO_TILE_PIXELS", 50_000)
    weights = _save_cyclegan(registry, tmp_path / "w.safetensors")
    make_image((320, 288), 3).save(tmp_path / "photo.png")
    outs = {}
    for name, extra in (("auto", []), ("off", ["--tile", "0"])):
        with pytest.raises(SystemExit) as done:
            main(["run", "cyclegan", "--weights", str(weights), str(tmp_path / "photo.png"),
                  "-o", str(tmp_path / f"{name}.png"), *extra])
        err = capsys.readouterr().err
        assert done.value.code == 0, err
        lines = [line for line in err.splitlines() if "tiling in" in line]
        outs[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), np.float64)
        if name == "auto":
            assert len(lines) == 1 and "320x288 is over 0.1 MP: tiling in 96 px tiles" in lines[0], err
            assert "--tile 0 turns this off" in lines[0] and "warning" not in err
        else:
            assert lines == [], err
    assert np.abs(outs["auto"] - outs["off"]).mean() <= MEAN_LIMIT
    assert not np.array_equal(outs["auto"], outs["off"])  # float rounding differs: the tiled path did run


def test_a_tile_under_16_px_is_a_usage_error(registry, tmp_path, capsys):
    weights = _save_cyclegan(registry, tmp_path / "w.safetensors")
    make_image((64, 64), 3).save(tmp_path / "photo.png")
    from anime_core.cli import main

    with pytest.raises(SystemExit) as done:
        main(["run", "cyclegan", "--weights", str(weights), str(tmp_path / "photo.png"), "--tile", "8"])
    assert done.value.code == 2 and "or 0 for no tiling" in capsys.readouterr().err


def test_a_video_starts_with_an_estimate(registry, tmp_path, capsys):
    """Issue 24: a clip is announced with its frames and estimated time before its first frame runs."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_helpers import make_clip

    from anime_core.cli import main

    weights = _save_cyclegan(registry, tmp_path / "w.safetensors")
    make_clip(tmp_path / "clip.mp4", n=12, size=(64, 48), audio=None)
    with pytest.raises(SystemExit) as done:
        main(["run", "cyclegan", "--weights", str(weights), str(tmp_path / "clip.mp4"), "-o",
              str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    assert done.value.code == 0, err
    assert "clip.mp4: 12 frames of 64x48 px on the CPU, about" in err, err


def _held_at_pauses(pipe: TranslatePipeline, image: torch.Tensor, tile: int, net: nn.Module | None) -> int:
    """Most bytes of tensors alive (found by the garbage collector) while all tiles wait at a global call,
    less those alive before the sweep (the weights, the image, other tests' tensors)."""
    import gc
    import warnings

    from anime_core.inference import tiling

    def alive() -> int:
        storages = {}
        with warnings.catch_warnings():  # isinstance() on some lazily deprecated torch objects warns
            warnings.simplefilter("ignore")
            for obj in gc.get_objects():  # plain tensors only: an export's leftover fake tensors have no data
                if type(obj) in (torch.Tensor, nn.Parameter) and not obj.is_meta and obj.device.type == "cpu":
                    storages[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
        return sum(storages.values())

    held: list[int] = []
    settle = tiling._Sweep._settle

    def measured(self, key):  # every tile is paused here
        held.append(alive())
        return settle(self, key)

    h, w = image.shape[-2:]
    plan = pipe._tile_plan(h, w, tile)
    gc.collect()
    before = alive()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiling._Sweep, "_settle", measured)
        tiling.run_faithful(pipe, image, tile, plan, net=net)
    return max(held) - before


def test_paused_tiles_hold_only_live_maps_and_the_estimate_covers_them(registry):
    """The tiles run a torch.fx trace that frees each map after its last use (``tiling.lean``).

    AnimeGAN v2's eager forward keeps block_e's up-sampled 128-channel input alive through its
    three convolutions (``self.block_e(self._up(y, x))``): paused tiles held it at every norm of
    block_e. The trace gives the same output bit for bit, and while all tiles wait at a global
    call they hold at least one such map (128 channels at full size, float32) less. ``sweep_bytes``,
    measured on the trace on the meta device, is never under what they hold, nor wildly over it.
    """
    from anime_core.inference import tiling

    pipe = _pipeline(registry, "animegan", registry.build("animegan", variant="v2"))
    traced = tiling.lean(pipe.generator)
    assert traced is not pipe.generator and "= None" in traced.code
    image = io.to_tensor(make_image((384, 320), 3))
    x = image[None].float() / 255
    with torch.inference_mode():
        assert torch.equal(traced(x), pipe.generator(x))
    eager = _held_at_pauses(pipe, image, 128, net=pipe.generator)
    lean = _held_at_pauses(pipe, image, 128, net=None)
    upsampled = 128 * 320 * 384 * 4
    assert eager - lean >= upsampled and 2 * lean < eager, (eager, lean, upsampled)
    plan = pipe._tile_plan(320, 384, 128)
    need = tiling.sweep_bytes(plan, net=tiling.lean(pipe.generator, tiling._calls(plan)))
    assert lean <= need <= 3 * lean, (lean, need)


def test_the_sweep_memory_estimate_covers_the_context_maps_of_a_u_net(registry):
    """A U-Net's low-resolution half is computed whole (contexts): its maps count too."""
    from anime_core.inference import tiling

    pipe = _pipeline(registry, "cyclegan", registry.build("cyclegan", arch="unet"))
    image = io.to_tensor(make_image((384, 320), 3))
    plan = pipe._tile_plan(320, 384, 128)
    assert plan.contexts
    net = tiling.lean(pipe.generator, tiling._calls(plan))
    assert tiling.live_bytes(net, plan) is not None
    need = tiling.sweep_bytes(plan, net=net)
    held = _held_at_pauses(pipe, image, 128, net=None)
    assert held <= need <= 3 * held, (held, need)
