"""Tiled inference that gives the untiled result, with memory bounded by the tile size.

A tile alone cannot reproduce the whole image's output: its borders lack context, norms compute
their statistics over the tile instead of the image, self-attention sees only the tile, and a
resize with ``align_corners=True`` samples a grid that depends on the whole map's size. The
method (``docs/DESIGN-NOTES.md``, "Faithful tiling"):

1. **Plan** (:func:`plan_tiles`, on the meta device: no compute). Run the generator on shapes only,
   once per tile and once for the whole image, and find: the global layers (norms and global
   modules of :mod:`anime_core.inference.norms`), the receptive-field radius of everything else
   (the halo a tile needs so its core is exact), the alignment the downsampling needs, and, if
   the radius exceeds a quarter of the tile (a deep U-Net), the outermost low-resolution modules
   whose whole-image feature maps are no larger than a tile's largest tensor: these become
   *whole-image modules*, like self-attention.
2. **Passes.** Every pass runs all tiles. Each norm layer normalises with the statistics frozen
   from the previous pass (pass 0: the tile's own) and adds the sums and sums of squares of its
   input over the tile's core to this pass's statistics. A whole-image module returns its crop of
   the map computed after the previous pass; if its input comes from tile work, the tiles' cores
   assemble that input. After the pass, :class:`~anime_core.inference.tracing.Replay` computes
   the whole-image modules on the assembled inputs (everything large stays on the meta device).
   The passes stop when statistics and maps change by less than ``TOLERANCE`` (relative); the
   output is the last pass's cores.

Exact (up to float rounding) when the passes converged and the radius fits the halo; each pass
costs one tiled forward, typically 2-4 passes. Networks without global layers take one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.inference.norms import NormSpec, mean_var, moments, norm_spec, normalize
from anime_core.inference.tileplan import TilePlan, plan_tiles
from anime_core.inference.tracing import Intercept, Key, Replay, TileGeometry

TOLERANCE = 1e-2  # relative change of statistics and whole-image maps that ends the passes
MAX_PASSES = 6


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
    """Cores that partition ``length`` (multiples of ``align``), each inside a tile with ``halo`` around it.

    Every tile has size ``tile`` (``length`` if smaller) and starts at a multiple of ``align``;
    a core touching the image border needs no halo on that side.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    core = max(align, (tile - 2 * halo) // align * align)
    units, n = length // align, math.ceil(length / core)
    sizes = [(units // n + (i < units % n)) * align for i in range(n)]
    out, c0 = [], 0
    for size in sizes:
        start = min(max(c0 - halo, 0), length - tile)
        out.append(Span(start, start + tile, c0, c0 + size))
        c0 += size
    return out


# -- faithful tiling -----------------------------------------------------------------------------
Stats = dict[Key, tuple[torch.Tensor, torch.Tensor]]  # per norm call: per-group mean and biased variance


class TileModel(Protocol):
    """What :func:`run_faithful` needs of a pipeline (:class:`~anime_core.inference.pipeline.TranslatePipeline`)."""

    generator: nn.Module
    device: torch.device
    stride: int
    out_scale: int

    def preprocess(self, x: torch.Tensor) -> torch.Tensor: ...

    def postprocess(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...

    def autocast(self) -> Any: ...


@dataclass
class TilingReport:
    """What a tiled run did: tiles per pass, passes, halo, and why it is approximate (``notes``; empty: exact)."""

    tiles: int
    passes: int
    halo: int
    notes: list[str] = field(default_factory=list)


class _Passes:
    """The state of the passes over one image: statistics, whole-image maps, the current tile.

    Three kinds of run share one :class:`Intercept`: tile passes (``span`` set), the replay of
    whole-image modules, and runs of the small copy of the image (``small`` set).
    """

    def __init__(self, model: TileModel, plan: TilePlan, image: torch.Tensor) -> None:
        self.model, self.plan, self.image = model, plan, image
        self.used: Stats = {}  # statistics the tiles normalise with
        self.sums: dict[Key, torch.Tensor] = {}  # this pass's (count, sum, sum of squares) over the cores
        self.maps: dict[Key, torch.Tensor] = {}  # whole-image outputs of context calls, from the last replay
        self.inputs: dict[Key, torch.Tensor] = {}  # whole-image inputs of boundary calls, from the cores
        self.fresh: dict[Key, torch.Tensor] = {}
        self.span: tuple[Span, Span] | None = None
        self.replay: Replay | None = None
        self.small: str | None = None  # "own" statistics, "frozen" (self.used) or "corrected" (+ self.tau)
        self.tau: Stats = {}
        self.seen: Stats = {}  # statistics a small run normalised with
        self.eps: dict[Key, float] = {}
        self.intercept = Intercept(model.generator, self.handle)

    # -- module calls ----------------------------------------------------------------------------
    def handle(self, key: Key, module: nn.Module, orig: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if key in self.plan.contexts:
            if self.small:
                with self.intercept.plain():
                    return orig(*args, **kwargs)
            return self._context(key, orig, args, kwargs)
        if key in self.plan.norms:
            spec = norm_spec(module)
            assert spec is not None
            if self.small:
                return self._small_norm(key, spec, args[0])
            if self.span is not None:
                return self._norm(key, spec, args[0])
        return orig(*args, **kwargs)

    def _context(self, key: Key, orig: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        ctx = self.plan.contexts[key]
        if self.span is None:  # replay: compute the whole map
            assert self.replay is not None
            with self.intercept.plain(), self.replay.real():
                x = self.inputs[key].clone() if ctx.boundary else args[0]  # a copy: the module may work in place
                out = orig(x, *args[1:], **kwargs)
                self.fresh[key] = out
                return out.clone()
        if ctx.boundary:
            x = args[0]
            full = self.inputs.get(key)
            if full is None:
                full = self.inputs[key] = torch.zeros(ctx.in_shape, dtype=x.dtype, device=x.device)
            full[self._region(x)] = x[self._core(x)]
        whole = self.maps.get(key)
        if whole is None:  # first pass: the tile computes it alone
            with self.intercept.plain():
                return orig(*args, **kwargs)
        return whole[self._crop(whole)].clone()  # a copy: in-place ops after it must not touch the map

    def _norm(self, key: Key, spec: NormSpec, x: torch.Tensor) -> torch.Tensor:
        part = moments(x[self._core(x)], spec.groups)
        self.sums[key] = self.sums[key] + part if key in self.sums else part
        return normalize(x, spec, *self.used[key])

    def _small_norm(self, key: Key, spec: NormSpec, x: torch.Tensor) -> torch.Tensor:
        self.eps[key] = spec.eps
        mean, var = mean_var(moments(x, spec.groups))
        if self.small == "frozen":
            self.seen[key] = (mean, var)
            return normalize(x, spec, *self.used[key])
        if self.small == "corrected":
            shift, log_ratio = self.tau[key]
            mean, var = mean + shift, var * torch.exp(2 * log_ratio)
        self.seen[key] = (mean, var)
        return normalize(x, spec, mean, var)

    # -- where the current tile's core lies in a feature map ------------------------------------
    def _scale(self, x: torch.Tensor) -> tuple[float, float]:
        assert self.span is not None
        sy, sx = self.span
        return x.shape[-2] / (sy.stop - sy.start), x.shape[-1] / (sx.stop - sx.start)

    def _core(self, x: torch.Tensor) -> tuple[Any, ...]:
        """Index of the core in a map of this tile."""
        (sy, sx), (ky, kx) = self.span, self._scale(x)  # type: ignore[misc]
        rows = slice(round((sy.core_start - sy.start) * ky), round((sy.core_stop - sy.start) * ky))
        cols = slice(round((sx.core_start - sx.start) * kx), round((sx.core_stop - sx.start) * kx))
        return (..., rows, cols)

    def _region(self, x: torch.Tensor) -> tuple[Any, ...]:
        """Index of this tile's core in the whole-image map that ``x`` (a map of this tile) is part of."""
        (sy, sx), (ky, kx) = self.span, self._scale(x)  # type: ignore[misc]
        rows = slice(round(sy.core_start * ky), round(sy.core_stop * ky))
        cols = slice(round(sx.core_start * kx), round(sx.core_stop * kx))
        return (..., rows, cols)

    def _crop(self, full: torch.Tensor) -> tuple[Any, ...]:
        """Index of this tile in a whole-image map (exact for the maps kept results are computed from)."""
        index: list[Any] = [...]
        for span, n, whole in zip(self.span, full.shape[-2:], self.plan.padded):  # type: ignore[arg-type]
            k = n / whole
            size = round((span.stop - span.start) * k)
            start = min(int(span.start * k), n - size)
            index.append(slice(start, start + size))
        return tuple(index)

    # -- runs ------------------------------------------------------------------------------------
    def tile_pass(self, canvas: torch.Tensor) -> None:
        """Every tile once with ``self.used``; writes the cores' output and gathers statistics and inputs."""
        m, plan = self.model, self.plan
        h, w = self.image.shape[-2:]
        rows, cols = padded_index(h, plan.padded[0]), padded_index(w, plan.padded[1])
        s = m.out_scale
        self.sums = {}
        for sy in spans(plan.padded[0], plan.tile[0], plan.halo, plan.align):
            for sx in spans(plan.padded[1], plan.tile[1], plan.halo, plan.align):
                self.span = (sy, sx)
                pixels = self.image[:, rows[sy.start : sy.stop]][:, :, cols[sx.start : sx.stop]]
                x = _unit(pixels.unsqueeze(0).to(m.device))
                with ExitStack() as stack:
                    stack.enter_context(m.autocast())
                    if plan.geometry:
                        stack.enter_context(TileGeometry((sy.start, sx.start), plan.tile, plan.padded))
                    self.intercept.reset()
                    y = m.generator(m.preprocess(x))
                y0, y1, x0, x1 = sy.core_start, min(sy.core_stop, h), sx.core_start, min(sx.core_stop, w)
                if y1 <= y0 or x1 <= x0:  # a core in the padding only
                    continue
                core = y[..., (y0 - sy.start) * s : (y1 - sy.start) * s, (x0 - sx.start) * s : (x1 - sx.start) * s]
                core = torch.where(torch.isfinite(core), core.float(), torch.nan)
                inner = x[..., y0 - sy.start : y1 - sy.start, x0 - sx.start : x1 - sx.start]
                canvas[:, y0 * s : y1 * s, x0 * s : x1 * s] = m.postprocess(core, inner)[0].cpu()
        self.span = None

    def replay_pass(self) -> dict[Key, torch.Tensor]:
        """Compute every context call on the whole image from the inputs the cores assembled."""
        m = self.model
        self.fresh = {}
        self.replay = Replay(self.plan.budget)
        with m.autocast(), self.replay:
            self.intercept.reset()
            m.generator(torch.zeros(1, self.plan.channels, *self.plan.padded, device="meta"))
        self.replay = None
        return self.fresh

    def small_run(self, x: torch.Tensor, how: str) -> Stats:
        """Run the small copy untiled; returns the statistics its norms used (see :func:`run_faithful`)."""
        self.small, self.seen = how, {}
        with self.model.autocast():
            self.intercept.reset()
            self.model.generator(x)
        self.small = None
        return self.seen


def small_copy(model: TileModel, image: torch.Tensor, pixels: int) -> torch.Tensor:
    """The image shrunk (area average) to at most about ``pixels`` pixels, padded and preprocessed."""
    h, w = image.shape[-2:]
    f = max(2.0, math.sqrt(h * w / pixels))
    size = (max(1, round(h / f)), max(1, round(w / f)))
    # a channel at a time: the whole image in float is 12 bytes a pixel (2.3 GB of transient copies at 8192 px)
    x = torch.cat([F.interpolate(_unit(image[c : c + 1].unsqueeze(0).to(model.device)), size=size, mode="area")
                   for c in range(image.shape[0])], dim=1)
    return model.preprocess(pad_to_multiple(x, model.stride)[0])


def _unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 or float -> float in [0, 1]; a new tensor divided in place, so one copy of ``x`` at most."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _log_std(var: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log(var.clamp_min(1e-20))


def _stats_change(old: Stats, new: Stats, eps: dict[Key, float]) -> float:
    """Largest change of a mean (in standard deviations) or of a standard deviation (relative).

    Deviations include the norm's ``eps``, as normalising does: a constant channel does not count.
    """
    worst = 0.0
    for key, (mean, var) in new.items():
        std_new, std_old = (var + eps[key]).sqrt(), (old[key][1] + eps[key]).sqrt()
        shift = (mean - old[key][0]).abs() / std_new
        worst = max(worst, float(torch.maximum(shift, (std_new / std_old - 1).abs()).max()))
    return worst


def _map_change(old: dict[Key, torch.Tensor], new: dict[Key, torch.Tensor]) -> float:
    """Largest relative RMS change of a whole-image map (infinite for a map not computed before)."""
    worst = 0.0
    for key, a in new.items():
        if key not in old:
            return math.inf
        scale = a.float().pow(2).mean().sqrt().clamp_min(1e-12)
        worst = max(worst, float((a.float() - old[key].float()).pow(2).mean().sqrt() / scale))
    return worst


def run_faithful(model: TileModel, image: torch.Tensor, tile: int,
                 plan: TilePlan | None = None) -> tuple[torch.Tensor, TilingReport]:
    """Translate one (3, H, W) image (uint8, or float in [0, 1]) in tiles; see the module docstring.

    Returns the (3, H*s, W*s) float [0, 1] output on the CPU and what the tiling did.

    The norms' statistics come from a coarse-grid correction (the full approximation scheme of
    multigrid solvers): the statistics ``u`` are a fixed point, ``u = G(u)`` where ``G`` measures
    what the tiles' norm inputs are when every norm uses ``u``. Iterating ``u <- G(u)`` diverges
    (an error in one layer's statistics rescales every later layer's input), so each step instead
    solves ``u = G_small(u) + tau`` on a copy of the image small enough to run untiled, where each
    norm measures its own input as it goes (so the small solve is exact in one run) and ``tau =
    G(u_old) - G_small(u_old)`` is the difference between full and small resolution measured at
    the last tile pass.
    """
    h, w = image.shape[-2:]
    if plan is None:
        plan = plan_tiles(model.generator, _channels(model), torch.float32, (h, w), tile, model.stride)
    s = model.out_scale
    canvas = torch.zeros(3, h * s, w * s)
    state = _Passes(model, plan, image)
    n_tiles = len(spans(plan.padded[0], plan.tile[0], plan.halo, plan.align)) * len(
        spans(plan.padded[1], plan.tile[1], plan.halo, plan.align))
    notes = list(plan.notes)
    passes, change = 0, math.inf
    with torch.inference_mode(), state.intercept:
        small = small_copy(model, image, plan.tile[0] * plan.tile[1]) if plan.norms else None
        if small is not None:
            state.used = state.small_run(small, "own")
        for passes in range(1, MAX_PASSES + 1):
            state.tile_pass(canvas)
            if not plan.norms and not plan.contexts:
                break
            maps = state.replay_pass() if plan.contexts else {}
            change = _map_change(state.maps, maps) if passes > 1 else (math.inf if maps else 0.0)
            if small is not None:
                measured = {k: mean_var(v) for k, v in state.sums.items()}
                coarse = state.used if passes == 1 else state.small_run(small, "frozen")
                state.tau = {k: (measured[k][0] - coarse[k][0], _log_std(measured[k][1]) - _log_std(coarse[k][1]))
                             for k in measured}
                fresh = state.small_run(small, "corrected")
                change = max(change, _stats_change(state.used, fresh, state.eps))
                state.used = fresh
            state.maps = maps
            if change <= TOLERANCE:
                break
        else:
            notes.append(f"statistics still changed by {change:.2g} after {MAX_PASSES} passes")
    return canvas, TilingReport(n_tiles, passes, plan.halo, notes)


def _channels(model: TileModel) -> int:
    return int(model.preprocess(torch.zeros(1, 3, 2, 2, device=model.device)).shape[1])
