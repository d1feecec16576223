"""Tiled inference that gives the untiled result in one sweep, in less memory than one forward.

A tile alone cannot reproduce the whole image's output: its borders lack context, norms compute
their statistics over the tile instead of the image, self-attention sees only the tile, and a
resize with ``align_corners=True`` samples a grid that depends on the whole map's size. The
method (``docs/DESIGN-NOTES.md``, "Faithful tiling"):

1. **Plan** (:func:`~anime_core.inference.tileplan.plan_tiles`, on the meta device: no compute).
   Run the generator on shapes only, once per tile and once for the whole image, and find: the
   global calls (norms and global modules of :mod:`anime_core.inference.norms`), the halo (the
   receptive field of one *segment*: the layers between two global calls), the alignment the
   downsampling needs, and the low-resolution calls computed on the whole image (*contexts*).
2. **One sweep, segment by segment** (:class:`_Sweep`). Every tile runs the generator's
   :func:`lean` trace node by node in the calling thread (a Python generator per tile; a net that
   is no trace runs in a worker thread per tile, one at a time), and stops at each global call.
   When all tiles have reached it: a norm gets the exact statistics (count, sum and sum of squares of its input over
   the tiles' cores, in float64), and each tile's norm input gets its halo refreshed from its
   neighbours' cores, so the halo only has to cover one segment's reach; a context is computed
   once on the map assembled from the cores, and each tile takes its crop. Then every tile runs
   its next segment.

Exact up to float rounding, in one forward's worth of compute plus the halos (no passes, no
fixed-point iteration). Memory: one tile's working set plus what the paused tiles hold, about
the live feature maps of the whole image at a global call (see the cost model in the notes).
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Generator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_flatten

from anime_core.budget import check_bytes, max_memory
from anime_core.inference.casting import compute_dtype
from anime_core.inference.io import BadImage
from anime_core.inference.norms import (
    donate,
    is_global_module,
    mean_var,
    moments,
    norm_spec,
    normalize,
)
from anime_core.inference.speed import one_torch_thread, own_mappings, paused_gc, release_large_blocks, trim_heap
from anime_core.inference.tileplan import TilePlan, plan_tiles
from anime_core.inference.tracing import (
    Intercept,
    Key,
    MetaShapes,
    Replay,
    TileGeometry,
    map_factor,
    reflect_pad,
    resize_reflect,
    resize_reflect_conv,
)

Progress = Callable[[int, int], None]  # (segments of tiles done, total)


# -- padding and the simple blended tiling -------------------------------------------------------
def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) bottom/right to a multiple of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def padded_index(n: int, length: int, reflect: bool = True) -> torch.Tensor:
    """Source row of each of ``length`` rows of a side of ``n`` padded as :func:`pad_to_multiple` pads it."""
    i = torch.arange(length)
    if reflect and length - n < n:
        return torch.where(i < n, i, 2 * (n - 1) - i)
    return i.clamp(max=n - 1)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` overlap."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(n: int, lead: int, trail: int, overlap: int) -> torch.Tensor:
    """1-D weights of one tile: trimmed ramps over ``overlap`` at the interior edges."""
    w = torch.ones(n)
    margin = overlap // 4
    ramp_len = max(1, overlap - 2 * margin)
    ramp = torch.clamp((torch.arange(overlap, dtype=torch.float32) - margin + 1) / (ramp_len + 1), 0, 1)
    if lead:
        w[:overlap] = ramp[: min(overlap, n)]
    if trail:
        w[n - overlap :] = torch.minimum(w[n - overlap :], ramp.flip(0)[: min(overlap, n)])
    return w


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tile: int,
    overlap: int,
    out_channels: int = 3,
    scale: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` tile by tile and blend the overlaps: exact only for networks without global layers.

    ``fn``: float (1, C, h, w) -> (1, out_channels, h*scale, w*scale). Tiles overlap by ``overlap``
    pixels; in the overlap each tile's weight is 0 for the quarter nearest its edge, then rises
    linearly, so a network whose receptive-field radius is under ``overlap / 4`` gives exactly the
    untiled result. The fallback of :func:`run_faithful` for a generator it cannot analyse.
    """
    _, h, w = image.shape
    tile = min(tile, max(h, w))
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = torch.zeros(out_channels, h * scale, w * scale)
    weight = torch.zeros(1, h * scale, w * scale)
    for yi, y in enumerate(ys):
        th = min(tile, h - y)
        wy = _ramp(th * scale, yi > 0, yi < len(ys) - 1, overlap * scale)
        for xi, x in enumerate(xs):
            tw = min(tile, w - x)
            wx = _ramp(tw * scale, xi > 0, xi < len(xs) - 1, overlap * scale)
            patch = image[:, y : y + th, x : x + tw].unsqueeze(0)
            result = fn(patch)[0].float().cpu()
            wt = (wy[:, None] * wx[None, :]).unsqueeze(0)
            ys_, xs_ = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
            out[:, ys_, xs_] += result * wt
            weight[:, ys_, xs_] += wt
    return out / weight.clamp_min(1e-8)


# -- layout --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One tile along one axis: it computes ``[start, stop)`` and keeps ``[core_start, core_stop)``."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def spans(length: int, tile: int, halo: int, align: int) -> list[Span]:
    """Cores that partition ``length``, each inside a tile of at most about ``tile`` with ``halo`` around it.

    Cores start at multiples of ``align`` (the last one ends at ``length``, which need not be one),
    a tile is its core plus ``halo`` on each side inside the image, and every tile but the last
    spans the same pixels (the last no more), so the halos are all the recomputation there is:
    ``n`` tiles compute ``length + 2 * halo * (n - 1)`` px.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    n = max(1, math.ceil((length - 2 * halo) / max(align, tile - 2 * halo)))
    # every tile but the last spans ``extent`` px (a multiple of ``align``), the last the rest (at most as much): a
    # tile's maps are then the size of the one before it, so they fit the blocks it freed (the heap stays compact)
    extent = -(-(length + 2 * halo * (n - 1)) // n // align) * align if n > 1 else length
    step = extent - 2 * halo
    cuts = [0, *(i * step + halo for i in range(1, n)), length]
    if n > 1 and (step <= 0 or cuts[-2] >= length):  # too thin to equalise: cuts as even as the alignment allows
        spread = (length + 2 * halo * (n - 1)) / n
        cuts = [0]
        for i in range(1, n):
            cut = int(i * (spread - 2 * halo) + halo) // align * align
            if cut > cuts[-1] and cut < length:
                cuts.append(cut)
        cuts.append(length)
    return [Span(max(0, c0 - halo), min(length, c1 + halo), c0, c1) for c0, c1 in itertools.pairwise(cuts)]


def layout(plan: TilePlan) -> list[tuple[Span, Span]]:
    """The tiles of ``plan``, row by row."""
    return [(sy, sx) for sy in spans(plan.padded[0], plan.tile[0], plan.halo, plan.align)
            for sx in spans(plan.padded[1], plan.tile[1], plan.halo, plan.align)]


def tiling_cost(plan: TilePlan) -> float:
    """Pixels the tiles compute per pixel of the (padded) image: the cost of tiling relative to one forward."""
    computed = sum((sy.stop - sy.start) * (sx.stop - sx.start) for sy, sx in layout(plan))
    return computed / (plan.padded[0] * plan.padded[1])


#: without a trace to measure (:func:`live_bytes`), the paused tiles are taken to hold this many of one
#: tile's largest tensor per tile pixel; measured while all tiles wait at a global call
#: (tests/core/test_tiling.py's ``_held_at_pauses``): the eager generator up to 3.25 (CycleGAN U-Net;
#: AnimeGAN v2 2.4), its :func:`lean` trace up to 2.3 (U-Net, whose skips stay live; AnimeGAN v2 0.56)
LIVE_MAPS = {"eager": 3.5, "lean": 2.5}
#: resident memory per byte of measured live maps: halos, the heap's own overhead and fragmentation
#: (AnimeGAN v2, 1024 px tiles, stepped in the heap: bf16 2048x1451 grew 1.2-1.65 GB and 3072x2176 2.4-2.5 GB
#: against 0.94 and 1.47 GB measured on meta; fp32 2048x1451 2.4 GB against 1.9)
HEAP_MARGIN = 1.8

#: a segment that holds this much more than every segment before it starts with a trimmed heap (:func:`trim_points`)
TRIM_GROWTH = 1.25


class Live(NamedTuple):
    """What one tile holds, in bytes, measured on the meta device (:func:`live_bytes`)."""

    paused: float  # the most at a global call
    peak: float  # the most anywhere
    stages: tuple[float, ...]  # the most in each segment (between global calls), in order
    largest: tuple[float, ...]  # the largest tensor made in each segment, in order


_LIVE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Live | None]] = weakref.WeakKeyDictionary()


class _LiveBytes(fx.Interpreter):
    """Runs a :func:`lean` trace on the meta device and measures the bytes its values hold.

    fx's interpreter drops each value after its last use, as the traced code does, so at any node
    its environment is what a tile holds there. Norms and global modules keep their input's shape
    and are not run (their meta kernels are slow Python decompositions).
    """

    def __init__(self, module: fx.GraphModule, calls: frozenset[str]) -> None:
        super().__init__(module)
        self.calls = calls  # the plan's contexts: tiles stop there too
        self.paused = self.peak = 0.0
        self.stages = [0.0]
        self.largest = [0.0]

    def run_node(self, n: fx.Node) -> Any:
        held = sum(v.numel() * v.element_size() for v in self.env.values() if isinstance(v, torch.Tensor))
        if n.op == "call_module" and (n.target in self.calls or _global(self.module.get_submodule(str(n.target)))):
            self.paused = max(self.paused, held)
            self.stages.append(0.0)  # a tile stops here: the next segment starts
            self.largest.append(0.0)
        out = super().run_node(n)
        sizes = [t.numel() * t.element_size() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        made = sum(sizes)
        self.largest[-1] = max(self.largest[-1], *sizes, 0)
        self.peak = max(self.peak, held + made)
        self.stages[-1] = max(self.stages[-1], held + made)
        return out

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        if _global(self.module.get_submodule(str(target))):
            return torch.empty(args[0].shape, dtype=args[0].dtype, device="meta")
        return super().call_module(target, args, kwargs)


def _global(module: nn.Module) -> bool:
    """A global call of :mod:`~anime_core.inference.norms`: a global-statistics norm or a global module."""
    return norm_spec(module) is not None or is_global_module(module)


def live_bytes(net: nn.Module, plan: TilePlan, dtype: torch.dtype = torch.float32) -> Live | None:
    """What a tile of ``plan`` holds in one forward: at the global calls, anywhere, and in each segment.

    Measured on the meta device (shapes only) for a :func:`lean` trace whose weights are in ``dtype``
    (bf16 nets hold half the bytes); None for a net that is not one.
    """
    if not isinstance(net, fx.GraphModule):
        return None
    key = (plan.tile, plan.channels, dtype)
    cache = _LIVE.setdefault(net, {})
    if key not in cache:
        probe = _LiveBytes(net, _calls(plan))
        try:
            with torch.inference_mode(), MetaShapes():
                probe.run(torch.empty(1, plan.channels, *plan.tile, device="meta", dtype=dtype))
            cache[key] = Live(float(probe.paused), float(probe.peak), tuple(probe.stages), tuple(probe.largest))
        except Exception:  # an operation without a meta kernel: estimate instead
            cache[key] = None
    return cache[key]


def trim_points(net: nn.Module, plan: TilePlan, dtype: torch.dtype = torch.float32) -> frozenset[int]:
    """The global calls (by their order in a tile's forward) after which a sweep trims the heap (:func:`trim_heap`):
    those before a segment that holds a quarter more than every segment before it, or makes a map a quarter larger
    than any before it (:func:`live_bytes`; none for a net that is no trace). Its larger maps cannot reuse the holes
    the smaller ones left among the paused tiles' maps, which would otherwise stay resident through the sweep's
    peak."""
    found = live_bytes(net, plan, dtype)
    if found is None:
        return frozenset()
    points = set()
    for sizes in (found.stages, found.largest):
        most = sizes[0]
        for i, size in enumerate(sizes[1:]):
            if size > TRIM_GROWTH * most:
                points.add(i)
            most = max(most, size)
    return frozenset(points)


def sweep_bytes(plan: TilePlan, lean: bool = True, net: nn.Module | None = None,
                dtype: torch.dtype = torch.float32) -> float:
    """Estimated memory of a sweep: the whole image's live maps at a global call, halos included, plus one
    tile's working set; measured on ``net`` in ``dtype`` (:func:`live_bytes`) where it is a trace, else
    :data:`LIVE_MAPS` (float32)."""
    pixels = plan.padded[0] * plan.padded[1] * tiling_cost(plan)
    tile_pixels = plan.tile[0] * plan.tile[1]
    found = live_bytes(net, plan, dtype) if net is not None else None
    if found is not None:
        paused, peak = found.paused, found.peak
        contexts = sum(4 * (math.prod(c.in_shape) + math.prod(c.out_shape)) for c in plan.contexts.values())
        return HEAP_MARGIN * (paused / tile_pixels * pixels + peak) + contexts
    maps = LIVE_MAPS["lean" if lean else "eager"]
    return maps * plan.budget / tile_pixels * pixels


def sweep_need(model: TileModel, plan: TilePlan) -> float:
    """Estimated bytes of :func:`run_faithful`'s exact sweep of ``plan`` (checked against the memory budget).

    Measured on the generator's :func:`lean` trace; a graph backend's segments hold what it holds.
    """
    traced = lean(model.generator, _calls(plan))
    return sweep_bytes(plan, lean=traced is not model.generator, net=traced, dtype=compute_dtype(model))


def segments(plan: TilePlan) -> int:
    """How many segments each tile runs: one more than the global calls."""
    return len(plan.norms) + len(plan.contexts) + 1


# -- the net the tiles run -----------------------------------------------------------------------
_LEAN: weakref.WeakKeyDictionary[nn.Module, dict[frozenset[str], nn.Module]] = weakref.WeakKeyDictionary()


class _Tracer(fx.Tracer):
    """Keeps norms, global modules and the ``calls`` named as calls (the sweep intercepts them); inlines the rest."""

    def __init__(self, calls: frozenset[str]) -> None:
        super().__init__()
        self.calls = calls

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.calls or _global(m) or super().is_leaf_module(m, qualname)


def lean(generator: nn.Module, calls: frozenset[str] = frozenset()) -> nn.Module:
    """``generator`` as a ``torch.fx`` graph that frees each tensor after its last use (itself if untraceable).

    A paused tile holds what its forward still references. Eager code also keeps tensors it no
    longer needs: a block's input while the block runs (``self.block_e(self._up(y, x))`` keeps
    AnimeGAN v2's up-sampled 128-channel map through three convolutions), a map kept only for its
    shape. The traced graph frees every value after its last use (torch.fx's code generator), so
    the paused tiles hold only the live maps. Same modules, names and call order (the plan's keys
    still match; ``calls``: the names of modules the plan computes whole, kept as calls), same
    operations: the output is bit-identical. Traced once per generator and ``calls``.
    """
    traced = _LEAN.setdefault(generator, {}).get(calls)
    if traced is None:
        try:
            graph = _Tracer(calls).trace(generator)
            modules = dict(generator.named_modules())
            _donate_dead_norm_inputs(graph, modules)
            _activate_norm_outputs_in_place(graph, modules)
            _fuse_resize_reflect(graph, modules)
            _fuse_padded_conv(graph, modules, calls)
            _reflect_pads_as_calls(graph, modules)
            traced = fx.GraphModule(generator, graph, type(generator).__name__)
        except Exception:  # code that branches on values or shapes it cannot follow: run it as it is
            traced = generator
        _LEAN[generator][calls] = traced
    return traced


def _donate_dead_norm_inputs(graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
    """Before each norm whose input is a convolution's output read by nothing else: ``donate`` it
    (the sweep's :func:`~anime_core.inference.norms.normalize` then writes into it, no fresh map)."""
    for node in list(graph.nodes):
        if node.op != "call_module" or norm_spec(modules[node.target]) is None or not node.args:
            continue
        x = node.args[0]
        if (isinstance(x, fx.Node) and x.op == "call_module" and len(x.users) == 1
                and isinstance(modules.get(x.target), nn.modules.conv._ConvNd)):
            with graph.inserting_before(node):
                graph.call_function(donate, (x,))


#: activations that have an in-place twin with the same arguments
_IN_PLACE: dict[type[nn.Module], Callable[[nn.Module], tuple[Callable[..., Any], tuple]]] = {
    nn.LeakyReLU: lambda m: (F.leaky_relu_, (m.negative_slope,)),
    nn.ReLU: lambda m: (F.relu_, ()),
}


def _activate_norm_outputs_in_place(graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
    """An activation whose input is a norm's output read by nothing else runs in place: one fresh map less per
    layer in each tile (the norm's output is the tile's own; the same kernel, so the same values)."""
    for node in list(graph.nodes):
        twin = _IN_PLACE.get(type(modules.get(node.target))) if node.op == "call_module" else None
        x = node.args[0] if node.args else None
        if (twin is None or getattr(modules[node.target], "inplace", False) or not isinstance(x, fx.Node)
                or len(x.users) != 1 or x.op != "call_module" or norm_spec(modules.get(x.target)) is None):
            continue
        fn, extra = twin(modules[node.target])
        with graph.inserting_before(node):
            new = graph.call_function(fn, (x, *extra))
        node.replace_all_uses_with(new)
        graph.erase_node(node)


def _fuse_resize_reflect(graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
    """A bilinear ``align_corners`` resize read only by a reflection pad becomes one :func:`resize_reflect` call, so
    that a strip's resize writes into the padded map (the same values; AnimeGAN v2, a 2048 px strip in bf16: its
    largest segment holds 385 MB instead of 513, on the meta device)."""
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not F.interpolate or len(node.users) != 1 or not node.args:
            continue
        given = dict(zip(("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                          "antialias"), node.args)) | node.kwargs
        if (given.get("mode") != "bilinear" or given.get("align_corners") is not True
                or given.get("recompute_scale_factor") or given.get("antialias")):
            continue
        user = next(iter(user for user in node.users))
        pad = _reflection(user, modules)
        if pad is None or user.args[0] is not node:
            continue
        with graph.inserting_before(user):
            fused = graph.call_function(resize_reflect, (node.args[0], given.get("size"), given.get("scale_factor"),
                                                         pad))
        user.replace_all_uses_with(fused)
        graph.erase_node(user)
        graph.erase_node(node)


def _fuse_padded_conv(graph: fx.Graph, modules: dict[str, nn.Module], calls: frozenset[str]) -> None:
    """A :func:`resize_reflect` read only by an unpadded ``nn.Conv2d`` becomes one :func:`resize_reflect_conv` call, so
    that a strip convolves its padded map band by band (AnimeGAN v2, a 2048 px strip in bf16: 131 MB held at
    ``block_e``'s first convolution instead of 393 MB)."""
    for node in list(graph.nodes):
        if node.target is not resize_reflect or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        conv = modules.get(str(user.target)) if user.op == "call_module" else None
        if (type(conv) is not nn.Conv2d or str(user.target) in calls or user.args != (node,) or user.kwargs
                or tuple(conv.padding) != (0, 0) or parametrize.is_parametrized(conv)):
            continue
        with graph.inserting_before(user):
            weight = graph.get_attr(f"{user.target}.weight")
            bias = graph.get_attr(f"{user.target}.bias") if conv.bias is not None else None
            fused = graph.call_function(resize_reflect_conv, (*node.args, weight, bias, tuple(conv.stride),
                                                              tuple(conv.dilation), conv.groups))
        user.replace_all_uses_with(fused)
        graph.erase_node(user)
        graph.erase_node(node)


def _reflect_pads_as_calls(graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
    """Every other reflection pad becomes a :func:`reflect_pad` call: the same values, in a block of a rounded size."""
    for node in list(graph.nodes):
        pad = _reflection(node, modules)
        if pad is None or not node.args:
            continue
        with graph.inserting_before(node):
            new = graph.call_function(reflect_pad, (node.args[0], pad))
        node.replace_all_uses_with(new)
        graph.erase_node(node)


def _reflection(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[int, int, int, int] | None:
    """The (left, right, top, bottom) padding of a 2-d reflection pad call, or None for any other node."""
    if node.op == "call_module" and isinstance(modules.get(str(node.target)), nn.ReflectionPad2d):
        return tuple(modules[str(node.target)].padding)  # type: ignore[return-value]
    if node.op == "call_function" and node.target is F.pad and len(node.args) >= 2:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        pad = node.args[1]
        if mode == "reflect" and isinstance(pad, (tuple, list)) and len(pad) == 4 and all(type(p) is int for p in pad):
            return tuple(pad)  # type: ignore[return-value]
    return None


# -- faithful tiling -----------------------------------------------------------------------------
class TileModel(Protocol):
    """What :func:`run_faithful` needs of a pipeline (:class:`~anime_core.inference.pipeline.TranslatePipeline`)."""

    generator: nn.Module
    device: torch.device
    stride: int
    out_scale: int

    def preprocess(self, x: torch.Tensor) -> torch.Tensor: ...

    def postprocess(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...

    def autocast(self) -> Any: ...

    def to_compute(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TilingReport:
    """What a tiled run did: tiles, segments each tile ran, halo, and why it is approximate (``notes``; empty: exact).

    ``passes`` is kept for callers of the multi-pass design: a sweep is one pass.
    """

    tiles: int
    passes: int
    halo: int
    notes: list[str] = field(default_factory=list)
    segments: int = 1
    cost: float = 1.0  # computed pixels per image pixel


class _Abort(BaseException):
    """Raised in a paused tile's thread to unwind it when the sweep stops early."""


class _Found(Exception):  # control flow, not an error
    """Ends a replay once the context it was run for is computed."""


@dataclass(eq=False)
class _Tile:
    sy: Span
    sx: Span
    go: threading.Event = field(default_factory=threading.Event)
    counts: Counter[str] = field(default_factory=Counter)  # the tile's own call indices for Intercept
    key: Key | None = None  # the global call the tile waits at
    x: torch.Tensor | None = None  # the norm input it waits with
    groups: int = 1  # that norm's groups
    thread: threading.Thread | None = None
    steps: Generator[Key, None, None] | None = None  # a stepped tile's run (see _Sweep)
    geometry: TileGeometry | None = None  # its resize positions, entered on each step
    done: bool = False
    error: BaseException | None = None

    def rows(self, n: int) -> tuple[int, int, int, int]:
        """Span and core of this tile in a map of ``n`` rows (of the tile), in whole-map rows."""
        return _place(self.sy, n)

    def cols(self, n: int) -> tuple[int, int, int, int]:
        return _place(self.sx, n)


def _place(span: Span, n: int) -> tuple[int, int, int, int]:
    """(start, stop, core start, core stop) of ``span`` in a whole map whose tile map has ``n`` px.

    Positions are pixel positions divided by the map's factor (exact: spans start at multiples of
    the alignment); an edge that is the image's edge maps to the map's edge, whatever its rounding.
    """
    f = map_factor(span.stop - span.start, n)
    start = round(span.start / f)
    stop = start + n

    def at(p: int) -> int:
        return stop if p >= span.stop else start + round((p - span.start) / f)

    return start, stop, at(span.core_start), at(span.core_stop)


class _Sweep:
    """One sweep over the tiles of one image (see the module docstring).

    A :func:`lean` trace is *stepped*: every tile runs its graph node by node in the sweeping
    thread, as a Python generator that yields at each global call (:meth:`_interpret`). Any other
    net runs in worker threads strictly one at a time (a baton passed through events), each stopped
    inside the call by :class:`Intercept`. Either way the generator's Python code needs no locking
    and the order of every sum is fixed: the result is deterministic. Stepping is the faster: tiles
    taking turns across threads ran their layers 1.6x slower than the same turns in one thread
    (each thread an OpenMP team of its own; benchmarks/RESULTS.md), and the sums use all threads.
    """

    def __init__(self, model: TileModel, plan: TilePlan, image: torch.Tensor, canvas: torch.Tensor,
                 progress: Progress | None, frozen: dict[Key, tuple[torch.Tensor, torch.Tensor]] | None = None,
                 net: nn.Module | None = None) -> None:
        self.model, self.plan, self.image, self.canvas = model, plan, image, canvas
        self.net = net if net is not None else lean(model.generator, _calls(plan))  # what the tiles run
        self.tiles = [_Tile(sy, sx) for sy, sx in layout(plan)]
        self.progress = progress
        self.frozen = frozen  # given statistics: tiles run through norms without stopping
        self.total = len(self.tiles) * (len(plan.contexts) + 1 if frozen is not None else segments(plan))
        self.steps = 0
        self.arrived: queue.SimpleQueue[_Tile] = queue.SimpleQueue()
        self.stats: dict[Key, tuple[torch.Tensor, torch.Tensor]] = {}
        self.inputs: dict[Key, torch.Tensor] = {}  # per context: its whole input, assembled from the cores
        self.calls: dict[Key, tuple[Callable[..., Any], tuple, dict]] = {}
        self.maps: dict[Key, torch.Tensor] = {}  # per context: its whole output
        self.abort = False
        self.replaying: Key | None = None  # the context a whole-image replay is run for
        self.replay_mode = Replay(plan.budget)
        self.threads = torch.get_num_threads()
        self.local = threading.local()
        self.intercept = Intercept(self.net, self.handle)
        self.stepped = isinstance(self.net, fx.GraphModule)
        self.modules = dict(self.net.named_modules()) if self.stepped else {}
        stepped_exact = self.stepped and frozen is None
        self.trims = trim_points(self.net, plan, compute_dtype(model)) if stepped_exact else frozenset()
        self.settled = 0  # global calls settled so far
        # the maps a stepped tile pauses with (a convolution's output that a norm takes): each in a mapping of its own
        self.held = {n.args[0] for n in self.net.graph.nodes if n.target is donate} if self.stepped else set()

    def blocks(self) -> Any:
        """Where the sweep's large blocks come from. Stepped tiles: the heap of the enclosing reuse scope, so the
        running tile's maps reuse the blocks the tile before it freed (AnimeGAN v2, bf16, 2048x1451 in a fresh
        process: 5.9-6.3 s against 6.8-7.8 s with blocks above 32 MiB mapped afresh; 0.54M page faults a call
        against 2.0M), trimmed before larger segments (:func:`trim_points`); peak 1.8-2.2 GB against
        1.6-1.8. Tiles in threads (a graph backend's segments): blocks above 32 MiB mapped on their own
        (:func:`release_large_blocks`), as threads taking turns left the heap's holes resident."""
        return nullcontext() if self.stepped else release_large_blocks()

    # -- in the tiles' threads -------------------------------------------------------------------
    def handle(self, key: Key, module: nn.Module, orig: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        tile: _Tile | None = getattr(self.local, "tile", None)
        if tile is None and self.replaying is not None:
            return self._replayed(key, module, orig, args, kwargs)
        if tile is not None and (key in self.plan.contexts or key in self.plan.norms):
            steps = self._global(tile, key, module, orig, args, kwargs)
            try:
                while True:
                    self._pause(tile, next(steps))
            except StopIteration as end:
                return end.value
        return orig(*args, **kwargs)

    def _global(self, tile: _Tile, key: Key, module: nn.Module, orig: Callable[..., Any], args: tuple,
                kwargs: dict) -> Generator[Key, None, Any]:
        """A tile's global call ``key``: yields ``key`` where it waits for the other tiles, returns its result."""
        if key in self.plan.contexts:
            return (yield from self._context(tile, key, orig, args, kwargs))
        spec = norm_spec(module)
        assert spec is not None
        x = args[0]
        if self.frozen is not None:
            return normalize(x, spec, *self.frozen[key])
        tile.x, tile.groups = x, spec.groups
        yield key  # meanwhile the statistics are gathered and the halo of x refreshed
        return normalize(x, spec, *self.stats[key])

    def _context(self, tile: _Tile, key: Key, orig: Callable[..., Any], args: tuple,
                 kwargs: dict) -> Generator[Key, None, Any]:
        if not self.plan.contexts[key].boundary:  # its input comes from whole maps: a replay computes it
            yield key
            return self._cropped(tile, key)
        x = args[0]
        full = self.inputs.get(key)
        if full is None:
            full = self.inputs[key] = torch.zeros(self.plan.contexts[key].in_shape, dtype=x.dtype, device=x.device)
        ys, xs = self._core_of(tile, x)
        full[..., ys[2]: ys[3], xs[2]: xs[3]] = x[..., ys[2] - ys[0]: ys[3] - ys[0], xs[2] - xs[0]: xs[3] - xs[0]]
        self.calls[key] = (orig, args[1:], kwargs)
        yield key
        return self._cropped(tile, key)

    def _cropped(self, tile: _Tile, key: Key) -> torch.Tensor:
        whole = self.maps[key]
        out = self.plan.contexts[key].out_shape
        ry, rx = self._crop(tile.sy, out[-2], 0), self._crop(tile.sx, out[-1], 1)
        return whole[..., ry[0]: ry[1], rx[0]: rx[1]].clone()  # a copy: later in-place ops must not touch the map

    def _core_of(self, tile: _Tile, x: torch.Tensor) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        return tile.rows(x.shape[-2]), tile.cols(x.shape[-1])

    def _crop(self, span: Span, whole: int, axis: int) -> tuple[int, int]:
        """This tile's rows (``axis`` 0) or columns of a whole map of ``whole`` px."""
        length = self.plan.padded[axis]
        f = map_factor(length, whole)
        return round(span.start / f), whole if span.stop >= length else round(span.stop / f)

    def _pause(self, tile: _Tile, key: Key) -> None:
        tile.key = key
        self.arrived.put(tile)
        tile.go.wait()
        tile.go.clear()
        if self.abort:
            raise _Abort
        self.intercept.counts = tile.counts

    def _input(self, tile: _Tile) -> torch.Tensor:
        """The tile's pixels (the image padded as the untiled forward pads it), float in [0, 1]."""
        sy, sx = tile.sy, tile.sx
        h, w = self.image.shape[-2:]
        rows, cols = padded_index(h, self.plan.padded[0]), padded_index(w, self.plan.padded[1])
        pixels = self.image[:, rows[sy.start: sy.stop]][:, :, cols[sx.start: sx.stop]]
        return _unit(pixels.unsqueeze(0).to(self.model.device))

    def _geometry(self, tile: _Tile) -> TileGeometry | None:
        sy, sx = tile.sy, tile.sx
        return (TileGeometry((sy.start, sx.start), (sy.stop - sy.start, sx.stop - sx.start), self.plan.padded,
                             self.plan.aligned) if self.plan.geometry else None)

    def _paste(self, tile: _Tile, x: torch.Tensor, y: torch.Tensor) -> None:
        """Post-process the tile's core of the output ``y`` (input ``x``) into the canvas."""
        sy, sx, s, m = tile.sy, tile.sx, self.model.out_scale, self.model
        h, w = self.image.shape[-2:]
        y0, y1, x0, x1 = sy.core_start, min(sy.core_stop, h), sx.core_start, min(sx.core_stop, w)
        if y1 > y0 and x1 > x0:  # else a core in the padding only
            core = y[..., (y0 - sy.start) * s: (y1 - sy.start) * s, (x0 - sx.start) * s: (x1 - sx.start) * s]
            core = torch.where(torch.isfinite(core), core.float(), torch.nan)
            inner = x[..., y0 - sy.start: y1 - sy.start, x0 - sx.start: x1 - sx.start]
            self.canvas[:, y0 * s: y1 * s, x0 * s: x1 * s] = m.postprocess(core, inner)[0].cpu()

    def _work(self, tile: _Tile) -> None:
        m = self.model
        self.local.tile = tile
        torch.set_num_threads(self.threads)  # a new thread starts with the default
        self.intercept.counts = tile.counts
        try:
            x = self._input(tile)
            with torch.inference_mode(), ExitStack() as stack:
                stack.enter_context(m.autocast())
                geometry = self._geometry(tile)
                if geometry is not None:
                    stack.enter_context(geometry)
                self._paste(tile, x, self.net(m.to_compute(m.preprocess(x))))
        except _Abort:
            pass
        except BaseException as exc:  # handed to the sweeping thread, which raises it
            tile.error = exc
        finally:
            tile.done = True
            tile.key = None
            self.arrived.put(tile)

    # -- stepped tiles (in the sweeping thread) --------------------------------------------------
    def _steps(self, tile: _Tile) -> Generator[Key, None, None]:
        x = self._input(tile)
        y = yield from self._interpret(tile, self.model.to_compute(self.model.preprocess(x)))
        self._paste(tile, x, y)

    def _interpret(self, tile: _Tile, x: torch.Tensor) -> Generator[Key, None, Any]:
        """Run the trace on ``x`` node by node (``torch.fx``'s interpreter, which frees each value after its last
        use, as the compiled trace does), yielding at each global call of the plan."""
        run = fx.Interpreter(self.net)
        run.args_iter = iter((x,))
        for node in self.net.graph.nodes:
            key = None
            if node.op == "call_module":
                key = (str(node.target), tile.counts[node.target])
                tile.counts[node.target] += 1
            if key is not None and (key in self.plan.norms or key in self.plan.contexts):
                module = self.modules[str(node.target)]
                args, kwargs = run.fetch_args_kwargs_from_env(node)
                run.env[node] = yield from self._global(tile, key, module, module, args, kwargs)
            elif node in self.held:
                with own_mappings():
                    run.env[node] = run.run_node(node)
            else:
                run.env[node] = run.run_node(node)
            if node.op == "output":
                return run.env[node]
            for dead in run.user_to_last_uses.get(node, []):
                del run.env[dead]
        raise RuntimeError("the trace has no output")

    def _advance(self, tile: _Tile) -> None:
        """Run a stepped tile up to its next global call (or its end), inside its own geometry."""
        if tile.steps is None:
            tile.steps, tile.geometry = self._steps(tile), self._geometry(tile)
        with ExitStack() as stack:
            stack.enter_context(self.model.autocast())
            if tile.geometry is not None:
                stack.enter_context(tile.geometry)
            try:
                tile.key = next(tile.steps)
            except StopIteration:
                tile.done, tile.key = True, None

    # -- in the sweeping thread ------------------------------------------------------------------
    def run(self) -> None:
        try:
            with self.intercept:
                self._round()
                while not all(t.done for t in self.tiles):
                    keys = {t.key for t in self.tiles}
                    if len(keys) != 1 or None in keys:
                        raise RuntimeError("the tiles took different paths through the generator (it branches on "
                                           "values); run it with --tile 0")
                    self._settle(keys.pop())
                    if self.settled in self.trims:
                        trim_heap()
                    self.settled += 1
                    self._round()
        except BaseException:
            self.abort = True
            raise
        finally:
            for tile in self.tiles:
                if tile.steps is not None:
                    tile.steps.close()
                if tile.thread is not None and not tile.done:
                    tile.go.set()
            for tile in self.tiles:
                if tile.thread is not None:
                    tile.thread.join(timeout=60)

    def _round(self) -> None:
        """Every tile runs its next segment, one after the other."""
        for tile in self.tiles:
            if self.stepped:
                self._advance(tile)
                self.steps += 1
                if self.progress is not None:
                    self.progress(self.steps, self.total)
                continue
            if tile.thread is None:
                tile.thread = threading.Thread(target=self._work, args=(tile,), daemon=True, name="anime-tile")
                tile.thread.start()
            else:
                tile.go.set()
            while True:
                try:
                    got = self.arrived.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
                    break
                except queue.Empty:
                    continue
            if got.error is not None:
                raise got.error
            self.steps += 1
            if self.progress is not None:
                self.progress(self.steps, self.total)

    def _settle(self, key: Key) -> None:
        """All tiles wait at ``key``: compute its statistics and refresh the halos, or compute the context."""
        if key in self.plan.contexts and not self.plan.contexts[key].boundary:
            self._replay(key)
            return
        if key in self.plan.contexts:
            orig, rest, kwargs = self.calls.pop(key)
            with self.intercept.plain(), self.model.autocast():
                self.maps[key] = orig(self.inputs.pop(key), *rest, **kwargs)
            return
        self.stats[key] = mean_var(self._moments())
        self._exchange()

    def _replay(self, key: Key) -> None:
        """Compute context ``key``, whose input derives from whole maps only, by a whole-image run that
        keeps large tensors on the meta device (:class:`Replay`) and stops once ``key`` is computed."""
        self.replaying, self.replay_mode = key, Replay(self.plan.budget)
        try:
            with self.model.autocast(), self.replay_mode:
                self.intercept.counts = Counter()
                self.net(torch.zeros(1, self.plan.channels, *self.plan.padded, device="meta",
                                     dtype=compute_dtype(self.model)))
        except _Found:
            pass
        finally:
            self.replaying = None
        if key not in self.maps:
            raise RuntimeError(f"the whole-image replay did not reach {key[0]}")

    def _replayed(self, key: Key, module: nn.Module, orig: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if key in self.maps:
            return self.maps[key].clone()
        if key == self.replaying:
            with self.intercept.plain(), self.replay_mode.real():
                self.maps[key] = orig(*args, **kwargs)
            raise _Found
        spec = norm_spec(module)
        if key in self.plan.norms and spec is not None and not args[0].is_meta:
            return normalize(args[0], spec, *self.stats[key])
        return orig(*args, **kwargs)

    def _moments(self) -> torch.Tensor:
        """The sums over all tiles' cores of the maps they wait with, in tile order (a fixed order: deterministic).

        In the sweeping thread. Where tiles run in threads, on one OpenMP thread: every tile's thread
        is an OpenMP master with a pool of its own, and with more OpenMP threads than cores libgomp
        barely spins, so each small parallel region waits for a woken thread (0.1 ms; these sums are a
        few hundred of them per norm; a bf16 tile sweep at 2048 px spent 16 s in them, on one thread
        1.1 s). Stepped tiles share the sweeping thread's pool, so the sums use all of it.
        """
        total = None
        with one_torch_thread(enabled=not self.stepped):
            for tile in self.tiles:
                assert tile.x is not None
                (y0, _, r0, r1), (x0, _, c0, c1) = self._core_of(tile, tile.x)
                part = moments(tile.x, tile.groups, (slice(r0 - y0, r1 - y0), slice(c0 - x0, c1 - x0)))
                total = part if total is None else total + part
        assert total is not None
        return total

    def _exchange(self) -> None:
        """Copy every neighbour's core into each tile's halo (cores are exact; halos are stale)."""
        placed = []
        for t in self.tiles:
            assert t.x is not None
            placed.append((t, t.rows(t.x.shape[-2]), t.cols(t.x.shape[-1])))
        for t, ty, tx in placed:
            for u, uy, ux in placed:
                if u is t:
                    continue
                r0, r1 = max(ty[0], uy[2]), min(ty[1], uy[3])
                c0, c1 = max(tx[0], ux[2]), min(tx[1], ux[3])
                if r0 < r1 and c0 < c1:
                    t.x[..., r0 - ty[0]: r1 - ty[0], c0 - tx[0]: c1 - tx[0]] = (
                        u.x[..., r0 - uy[0]: r1 - uy[0], c0 - ux[0]: c1 - ux[0]])  # type: ignore[index]
        for t in self.tiles:
            t.x = None


def run_faithful(model: TileModel, image: torch.Tensor, tile: int, plan: TilePlan | None = None,
                 progress: Progress | None = None, net: nn.Module | None = None) -> tuple[torch.Tensor, TilingReport]:
    """Translate one (3, H, W) image (uint8, or float in [0, 1]) in tiles; see the module docstring.

    Returns the (3, H*s, W*s) float [0, 1] output on the CPU and what the tiling did.
    ``progress(done, total)`` is called after each segment of each tile. ``net``: what the tiles
    run instead of :func:`lean` ``(model.generator)``, with the same modules under the same names
    at every global call (a graph backend's segments around the generator's own norms).
    """
    h, w = image.shape[-2:]
    if plan is None:
        plan = plan_tiles(model.generator, _channels(model), torch.float32, (h, w), tile, model.stride)
    s = model.out_scale
    net = net if net is not None else lean(model.generator, _calls(plan))
    need = sweep_need(model, plan)
    if need > max_memory() and plan.norms:
        return _run_frozen(model, image, tile, need, progress, net)
    canvas = torch.zeros(3, h * s, w * s)
    sweep = _Sweep(model, plan, image, canvas, progress, net=net)
    with torch.inference_mode(), sweep.blocks(), paused_gc():
        sweep.run()
    return canvas, TilingReport(len(sweep.tiles), 1, plan.halo, list(plan.notes), segments(plan), tiling_cost(plan))


def _run_frozen(model: TileModel, image: torch.Tensor, tile: int, need: float,
                progress: Progress | None, net: nn.Module | None = None) -> tuple[torch.Tensor, TilingReport]:
    """Above the memory budget: statistics from a sweep of a copy shrunk to fit, then tiles that run
    through (one at a time, halo = the whole network's reach) with them. Approximate, and said so."""
    h, w = image.shape[-2:]
    f = math.sqrt(need / max_memory()) * 1.2
    size = (max(1, round(h / f)), max(1, round(w / f)))
    small = torch.cat([F.interpolate(_unit(image[c: c + 1].unsqueeze(0)), size=size, mode="area")
                       for c in range(image.shape[0])], dim=1)[0]  # a channel at a time: no float copy of the image
    small_plan = plan_tiles(model.generator, _channels(model), torch.float32, size, tile, model.stride)
    s = model.out_scale
    first = _Sweep(model, small_plan, small, torch.zeros(3, size[0] * s, size[1] * s), None, net=net)
    with torch.inference_mode(), first.blocks(), paused_gc():
        first.run()
    plan = plan_tiles(model.generator, _channels(model), torch.float32, (h, w), tile, model.stride, refresh=False)
    if plan.contexts:  # whole-image modules would stop every tile again
        fit = int(max(h, w) / f) // 64 * 64
        check_bytes(need, f"tiling {w}x{h} px (the paused tiles hold the image's live feature maps)", BadImage,
                    advice=f"shrink it with --size {fit}")
    canvas = torch.zeros(3, h * s, w * s)
    sweep = _Sweep(model, plan, image, canvas, progress, frozen=first.stats, net=net)
    with torch.inference_mode(), sweep.blocks(), paused_gc():
        sweep.run()
    note = (f"norm statistics from a copy shrunk to {size[1]}x{size[0]} px: the exact sweep would need "
            f"{need / 2**30:.1f} GiB, over the {max_memory() / 2**30:.1f} GiB memory budget")
    return canvas, TilingReport(len(sweep.tiles), 2, plan.halo, [*plan.notes, note], 1, tiling_cost(plan))


def _calls(plan: TilePlan) -> frozenset[str]:
    """Modules the plan computes on the whole map: kept as calls in the :func:`lean` trace."""
    return frozenset(key[0] for key in plan.contexts)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float -> float in [0, 1]; a new tensor divided in place, so one copy of ``x`` at most."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _channels(model: TileModel) -> int:
    return int(model.preprocess(torch.zeros(1, 3, 2, 2, device=model.device)).shape[1])
