"""Planning faithful tiling from shapes alone (meta device: no compute, no memory).

:func:`plan_tiles` runs the generator under :class:`~anime_core.inference.tracing.Shadow` a few
times, once per tile size and once per whole-image size, and decides:

- which module calls are computed on the whole image (*contexts*): self-attention and other
  registered global modules whose whole-image maps fit in ``max(tile budget, GLOBAL_MODULE_BYTES)``;
  and, when the receptive field of the rest exceeds a quarter of the tile (a deep U-Net), the
  outermost low-resolution calls whose whole-image input and output are no larger than the
  largest tensor of one tile's forward (the *tile budget*);
- which norm calls gather statistics across tiles (those outside contexts);
- the halo: the receptive-field radius of the tile-computed part, rounded up to the alignment;
- the alignment: tiles start at multiples of the deepest downsampling factor of the tile-computed
  part (and of the whole-image maps that part reads), so every feature map of a tile is an exact
  crop of the whole image's map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from anime_core.inference.norms import is_global_module, norm_spec
from anime_core.inference.tracing import INFINITE, Info, Intercept, Key, Shadow, nbytes, tensors

GLOBAL_MODULE_BYTES = 256 * 2**20  # a whole-image self-attention map up to this size is computed whole


@dataclass(frozen=True)
class Context:
    """A module call computed on the whole image; ``boundary``: its input comes from tile work."""

    boundary: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


@dataclass
class TilePlan:
    """How to tile one padded image size with one generator."""

    tile: tuple[int, int]
    padded: tuple[int, int]
    channels: int  # of the generator's input
    halo: int
    align: int
    radius: float
    contexts: dict[Key, Context]
    norms: set[Key]
    geometry: bool  # the generator resizes with align_corners=True: tiles need TileGeometry
    budget: float  # bytes: whole-image tensors larger than this are never held
    notes: list[str] = field(default_factory=list)  # why the result is approximate (empty: exact)
    #: (input (h, w), output (h, w)) of each align_corners resize of the whole image, in call order
    aligned: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)


@dataclass
class _Call:
    module: nn.Module
    parent: Key | None
    in_bytes: int
    out_bytes: int
    in_area: int  # input pixels (0 when the input is not one (N, C, H, W) tensor)
    eligible: bool  # one (N, C, H, W) tensor in, one out: it can be computed whole and cropped


@dataclass
class _Run:
    shadow: Shadow
    calls: dict[Key, _Call]
    contexts: dict[Key, Context]
    radius: float  # of what the tile computes and keeps: the output, norm inputs, boundary inputs
    min_scale: float  # of the smallest feature map the kept results are computed from


def _shadow(gen: nn.Module, channels: int, dtype: torch.dtype, size: tuple[int, int], tile: tuple[int, int],
            chosen: set[Key], budget: float = INFINITE, boundary: set[Key] | None = None,
            refresh: bool = True) -> _Run:
    """One meta run of ``gen`` on a (1, channels, *size) input with the ``chosen`` calls computed whole.

    ``boundary``: in a tile run, the chosen calls whose input the tiles assemble (found by a
    whole-image run, where they are the chosen calls with a tile-computed input).
    """
    shadow = Shadow(tile, budget)
    calls: dict[Key, _Call] = {}
    contexts: dict[Key, Context] = {}
    sinks: list[torch.Tensor] = []
    stack: list[Key] = []

    def handler(key: Key, module: nn.Module, orig: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        inputs = tensors((args, kwargs))
        x = inputs[0] if inputs else None
        if key in chosen:
            with intercept.plain(), shadow.quiet():
                out = orig(*args, **kwargs)
            edge = shadow.info(x).local if boundary is None else key in boundary
            if edge:  # the tiles' cores assemble its input
                sinks.append(x)
            contexts[key] = Context(edge, tuple(x.shape), tuple(out.shape))
            shadow.mark(out, Info(False, True, 0.0))
            return out
        norm = x is not None and norm_spec(module) is not None
        if norm:
            sinks.append(x)
        if is_global_module(module) and x is not None:
            # not run: its map may be huge (attention's chunk loop would take hours on meta tensors); a
            # global module keeps its input's shape, and one run per tile is already noted as approximate
            out = torch.empty(x.shape, dtype=x.dtype, device="meta")
            info = shadow.info(x)
            shadow.mark(out, Info(info.local, True, info.radius))
        else:
            stack.append(key)
            try:
                out = orig(*args, **kwargs)
            finally:
                stack.pop()
        if refresh and norm and isinstance(out, torch.Tensor):  # its input's halo is refreshed from the neighbours
            info = shadow.info(out)
            shadow.mark(out, Info(info.local, info.spatial, 0.0))
        four_d = x is not None and x.dim() == 4
        eligible = (four_d and len(inputs) == 1 and len(args) == 1 and args[0] is x
                    and isinstance(out, torch.Tensor) and out.dim() == 4)
        calls[key] = _Call(module, stack[-1] if stack else None, nbytes(x) if x is not None else 0,
                           nbytes(out) if isinstance(out, torch.Tensor) else 0,
                           x.shape[-2] * x.shape[-1] if four_d else 0, eligible)
        return out

    x = torch.zeros((1, channels, *size), dtype=dtype, device="meta")
    shadow.mark(x, Info(local=True, spatial=True))
    with torch.inference_mode(), Intercept(gen, handler) as intercept, shadow:
        out = gen(x)
    sinks += tensors(out)
    radius = max((shadow.info(t).radius for t in sinks), default=0.0)
    scales = [shadow.scale(t) for t in shadow.live(sinks) if shadow.info(t).spatial and t.dim() == 4]
    return _Run(shadow, calls, contexts, radius, min([1.0, *scales]))


def _outermost(calls: dict[Key, _Call], wanted: Callable[[Key, _Call], bool], taken: set[Key]) -> set[Key]:
    """Calls for which ``wanted`` holds, inside no other wanted or ``taken`` call."""

    def ancestors(key: Key) -> list[Key]:
        chain = []
        parent = calls[key].parent
        while parent is not None:
            chain.append(parent)
            parent = calls[parent].parent if parent in calls else None
        return chain

    chosen: set[Key] = set()
    for key in sorted(calls, key=lambda k: len(ancestors(k))):  # parents first
        if key not in taken and wanted(key, calls[key]) and not (set(ancestors(key)) & (chosen | taken)):
            chosen.add(key)
    return chosen


def _pow2_at_least(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(x) - 1e-6))


def _up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


#: a generator that resizes with ``align_corners=True`` is tiled in full-width strips of about one tile's area
#: (its tiles then resize their width with the library's kernel: :class:`~anime_core.inference.tracing.TileGeometry`)
#: where the image is at most ``STRIP_WIDTH`` tiles wide and a strip at least ``STRIP_HALOS`` halos high (768x1024 in
#: 256 px tiles, bf16, interleaved: 12 strips of 64 rows, 8 halos, pixel cost 1.22, took 1.57-1.67x the untiled time
#: against 2.01-2.04x for 20 squares, whose resizes sample a grid and whose sums go channel by channel; strips of 4
#: halos, pixel cost 1.48, were no faster than squares)
STRIP_WIDTH, STRIP_HALOS = 4, 8


def _strip(tile_hw: tuple[int, int], padded: tuple[int, int], t: int, unit: int, halo: int) -> tuple[int, int]:
    """``tile_hw``, or a full-width strip of the same area where one is worth it (see :data:`STRIP_WIDTH`)."""
    if padded[1] <= tile_hw[1] or padded[1] > STRIP_WIDTH * t:
        return tile_hw
    rows = t * t // padded[1] // unit * unit
    if rows < max(unit, STRIP_HALOS * halo):
        return tile_hw
    return min(rows, padded[0]), padded[1]


def plan_tiles(gen: nn.Module, channels: int, dtype: torch.dtype, size: tuple[int, int], tile: int,
               stride: int, refresh: bool = True) -> TilePlan:
    """Plan tiling an (h, w) image in tiles of at most ``tile`` px for ``gen`` (see the module docstring).

    ``channels``/``dtype``: of the generator's input; ``stride``: input sides must be multiples of it.
    ``refresh``: tiles stop at each norm and refresh their halos there (the halo covers one
    segment); False: tiles run through with given statistics (the halo covers the whole network).
    """
    h, w = size
    t = max(stride, tile // stride * stride)
    whole = (_up(h, stride), _up(w, stride))
    tile_hw = (min(t, whole[0]), min(t, whole[1]))

    def run(size: tuple[int, int], chosen: set[Key], budget: float = INFINITE,
            boundary: set[Key] | None = None) -> _Run:
        return _shadow(gen, channels, dtype, size, tile_hw, chosen, budget, boundary, refresh)

    # 1. what one tile holds at most, and the global modules that fit whole
    budget = float(run(tile_hw, set()).shadow.max_bytes)
    held = max(budget, GLOBAL_MODULE_BYTES)
    calls = run(whole, set()).calls
    notes: list[str] = []
    attention = {k for k, c in calls.items() if is_global_module(c.module)}
    too_big = {k for k in attention if not calls[k].eligible or max(calls[k].in_bytes, calls[k].out_bytes) > held}
    chosen = _outermost(calls, lambda k, c: k in attention, too_big)
    if too_big:
        notes.append(f"{len(too_big)} self-attention layer(s) too large to hold for the whole image run per tile")

    # 2. the receptive field of tile work; a deep network also computes its low-resolution part whole
    def tile_run(chosen: set[Key]) -> _Run:
        edges = {k for k, c in run(whole, chosen, budget).contexts.items() if c.boundary}
        return run(tile_hw, chosen, boundary=edges)

    cap = min(tile_hw) // 4
    local = tile_run(chosen)
    # too deep for tiles: the reach, or the alignment the downsampling needs, exceeds a quarter tile
    if max(local.radius, _pow2_at_least(1 / local.min_scale)) > cap:
        area = whole[0] * whole[1]
        chosen |= _outermost(
            calls, lambda k, c: c.eligible and max(c.in_bytes, c.out_bytes) <= budget and 0 < c.in_area < area,
            chosen | too_big)
        local = tile_run(chosen)

    # 3. alignment (every kept feature map of a tile is an exact crop of the whole image's), padding
    align = _pow2_at_least(1 / local.min_scale)
    unit = math.lcm(stride, align)
    padded = whole  # as the untiled forward pads: the last tile ends there, aligned or not
    t = max(unit, t // unit * unit)
    tile_hw = (min(t, padded[0]), min(t, padded[1]))
    final = run(padded, chosen, budget)

    cap = min(tile_hw) // 4 // align * align
    if local.radius > cap:
        reach = "unbounded" if math.isinf(local.radius) else f"{local.radius:.0f} px"
        notes.append(f"the receptive field ({reach}) exceeds the halo ({cap} px)")
    halo = cap if local.radius > cap else _up(math.ceil(local.radius), align)
    if local.shadow.uses_aligned_resize:
        tile_hw = _strip(tile_hw, padded, t, unit, halo)
    norms = {k for k, c in final.calls.items() if norm_spec(c.module) is not None}
    return TilePlan(tile_hw, padded, channels, halo, align, local.radius, final.contexts, norms,
                    local.shadow.uses_aligned_resize, budget, notes, final.shadow.aligned)
