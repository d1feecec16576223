"""Padding to the generator's stride and overlapping tiles blended at the seams.

Tiles overlap by ``overlap`` pixels. In the overlap, each tile's weight is 0 for the quarter
nearest its own edge (where its border effects live), then rises linearly, so a network whose
receptive field radius is under ``overlap / 4`` gives exactly the untiled result.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) bottom/right to a multiple of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


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
    """Apply ``fn`` (float (1, C, h, w) -> (1, out_channels, h*scale, w*scale)) tile by tile.

    ``image`` is (C, H, W) uint8 or float on any device; only one tile is on the model's
    device at a time, and the output canvas is float32 on the CPU.
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
