"""Layers whose output at a pixel depends on the whole image, and how tiled inference handles them.

Tiled inference (:mod:`anime_core.inference.tiling`) is exact for layers that only look at a
neighbourhood. Two kinds of layers look further, and this registry names them by module type:

- **Global-statistics norms** (:func:`register_norm`): instance norm, group norm (AnimeGANv2's
  GroupNorm(1) is a layer norm over C, H, W) and batch norm without running statistics. Their
  statistics are a mean and a variance per group of channels over all pixels, that is sums over
  pixels, which tiles can add up: :func:`moments` gives one tile's sums, :func:`normalize`
  applies statistics gathered from all tiles.
- **Global modules** (:func:`register_global_module`): layers that mix all positions, such as
  SAGAN self-attention. The tiler computes them once on the whole (low-resolution) feature map
  and hands every tile its crop.

A third-party layer joins either list with one call next to its class; nothing here is specific to a
plugin. This table is deliberately not a plugin hook: its keys are classes, registered when they are
defined, so it is complete for any network that exists whichever registry is current (a missing
entry would not fail, it would tile wrongly); docs/DESIGN-NOTES.md, "Faithful tiling", says more.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NormSpec:
    """How a norm layer normalises: ``groups`` groups of channels, ``eps``, and its affine parameters."""

    groups: int
    eps: float
    weight: torch.Tensor | None
    bias: torch.Tensor | None


NormRule = Callable[[nn.Module], "NormSpec | None"]
_NORMS: dict[type[nn.Module], NormRule] = {}
_GLOBAL_MODULES: list[type[nn.Module]] = []


def register_norm(kind: type[nn.Module], rule: NormRule) -> None:
    """Declare ``kind`` a global-statistics norm; ``rule(module)`` returns its spec, or None when it is local.

    A norm that uses stored running statistics at inference is local (per pixel) and needs no handling.
    """
    _NORMS[kind] = rule


def register_global_module(kind: type[nn.Module]) -> None:
    """Declare that modules of ``kind`` mix all positions of their (N, C, H, W) input (e.g. self-attention)."""
    if kind not in _GLOBAL_MODULES:
        _GLOBAL_MODULES.append(kind)


def norm_spec(module: nn.Module) -> NormSpec | None:
    """The spec of a global-statistics norm, or None for any other module (or a norm using running statistics)."""
    for kind in type(module).__mro__:
        rule = _NORMS.get(kind)
        if rule is not None:
            return rule(module)
    return None


def is_global_module(module: nn.Module) -> bool:
    return isinstance(module, tuple(_GLOBAL_MODULES))


def _instance_or_batch(module: nn.Module) -> NormSpec | None:
    # Running statistics are used in eval mode when tracked: then the layer is a per-pixel affine map.
    if module.track_running_stats and not module.training:
        return None
    return NormSpec(module.num_features, module.eps, module.weight, module.bias)


def _group(module: nn.GroupNorm) -> NormSpec:
    return NormSpec(module.num_groups, module.eps, module.weight, module.bias)


def moments(x: torch.Tensor, groups: int, core: tuple[slice, slice] | None = None) -> torch.Tensor:
    """Per-group (count, sum, sum of squares) of (1, C, h, w) ``x``, or of its ``core`` (rows, columns), in float64.

    Shape (3, groups). One read of the core, summed in float32 a row at a time (about 1e-8
    relative) and added up per channel, per group and over tiles in float64. A float32 map whose
    rows are contiguous is reduced in place (``sum`` and ``vector_norm`` along rows: 13 ms for a
    128x732x692 map, where ``linalg.vecdot`` over whole channels took 80 ms); any other (bf16,
    channels-last) is converted a few rows at a time into a small float32 buffer, as converting
    the whole map page-faulted a fresh copy and bf16 reductions are slow (a 128x359x512 bf16
    channels-last core: 18 ms, against 135 ms).
    """
    x = x.detach()[0]
    if core is not None:
        x = x[..., core[0], core[1]]
    block = _block(x) if groups == 1 else None
    if block is not None:  # one group (GroupNorm(1), layer norm) over a block of memory: no channel order needed
        total, squares = _flat_sums(block)
        return torch.stack([torch.tensor(float(block.numel()), dtype=torch.float64), total, squares]).view(3, 1)
    x = x.reshape(x.shape[0], -1, x.shape[-1] if x.dim() > 1 else 1)  # (C, rows, row length)
    if x.dtype == torch.float32 and x.stride(-1) == 1:
        total = x.sum(-1).double().sum(1)
        squares = torch.linalg.vector_norm(x, 2, dim=-1).double().square().sum(1)
    else:
        total, squares = _chunked_sums(x)
    count = torch.full_like(total, x.shape[1] * x.shape[2])
    return torch.stack([count.view(groups, -1).sum(1), total.view(groups, -1).sum(1), squares.view(groups, -1).sum(1)])


def _block(x: torch.Tensor) -> torch.Tensor | None:
    """(C, h, w) ``x`` as one flat run of memory (contiguous, or channels-last: a full-width strip's core), or None."""
    for v in (x, x.permute(1, 2, 0) if x.dim() == 3 else x):
        if v.is_contiguous():
            return v.view(-1)
    return None


def _flat_sums(v: torch.Tensor, chunk: int = 1 << 18) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 sum and sum of squares of flat ``v``, ``chunk`` elements at a time in a float32 buffer.

    Each chunk is summed in float32 (``sum``'s cascade: about 1e-7 relative, 3e-7 measured on a
    bf16 map of 32x492x2048 against float64) and the chunks in float64. For a bf16 strip's core
    1.2-2.1x faster than per-channel sums (:func:`_chunked_sums`), e.g. 32x492x2048: 11.9 ms
    against 14.7-17.3 ms on 2 threads; the buffer stays in the cache.
    """
    buf = torch.empty(min(chunk, v.numel()), dtype=torch.float32, device=v.device)
    sums = torch.empty(2, -(-v.numel() // chunk), dtype=torch.float32, device=v.device)  # per chunk
    for i, total, squares in zip(range(0, v.numel(), chunk), sums[0].unbind(), sums[1].unbind(), strict=True):
        part = buf[: min(chunk, v.numel() - i)]
        part.copy_(v[i: i + chunk])
        torch.sum(part, 0, out=total)
        torch.sum(part.square_(), 0, out=squares)
    total, squares = sums.double().sum(1)
    return total, squares


def _chunked_sums(x: torch.Tensor, rows: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel float64 sum and sum of squares of (C, h, w) ``x``, ``rows`` rows at a time in float32.

    Each chunk is summed by a matrix-vector product with ones (BLAS), twice as fast as ``sum``
    over the chunk's pixels when channels are the contiguous axis.
    """
    last = x.stride(0) == 1  # channels-last: a row is (w, C) in memory
    v = x.permute(1, 2, 0) if last else x.transpose(0, 1)  # rows first: (h, w, C) or (h, C, w)
    buf = torch.empty((min(rows, v.shape[0]), *v.shape[1:]), dtype=torch.float32, device=x.device)
    ones = torch.ones(buf.shape[0] * buf.shape[1] if last else buf.shape[2], device=x.device)
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    squares = torch.zeros_like(total)
    for r in range(0, v.shape[0], rows):
        part = buf[: min(rows, v.shape[0] - r)]
        part.copy_(v[r: r + rows])
        if last:  # (pixels, C): ones @ it
            flat = part.view(-1, part.shape[-1])
            one = ones[: flat.shape[0]]
            total += (one @ flat).double()
            squares += (one @ flat.square_()).double()
        else:  # (rows, C, w): it @ ones, then the rows
            total += (part @ ones).sum(0).double()
            squares += (part.square_() @ ones).sum(0).double()
    return total, squares


def mean_var(sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, sum, sum of squares) -> float32 mean and biased variance, as the norm layers compute them."""
    count, total, squares = sums
    mean = total / count
    return mean.float(), (squares / count - mean * mean).clamp_min(0).float()


def normalize(x: torch.Tensor, spec: NormSpec, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Normalise (1, C, h, w) ``x`` with given per-group statistics, then apply the layer's affine map.

    Computed in float32, as autocast runs the norm layers: ``batch_norm``'s inference kernel (twice
    as fast as the same affine map written out), straight from a bf16 map (its mixed-type kernel
    gives one bf16 map: 3.5x faster than converting first; ``addcmul`` into a bf16 map with float32
    factors was 12x slower). A donated map (:func:`donate`) of either dtype is overwritten by the
    same kernel (its ``out=`` variant: the same values, no fresh map; a bf16 map of 64x732x692 px
    normalised in 6.6 ms in place against 22 ms into fresh memory).
    """
    c = x.shape[1]
    per = c // spec.groups
    mean_c, var_c = mean.float().repeat_interleave(per), var.float().repeat_interleave(per)
    weight = spec.weight.float() if spec.weight is not None else None
    bias = spec.bias.float() if spec.bias is not None else None
    dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
    with torch.autocast(x.device.type, enabled=False):
        if donated(x) and dense and x.dtype in (torch.float32, torch.bfloat16):
            unused = x.new_empty(0, dtype=torch.float32)  # the saved statistics of training mode
            torch.ops.aten.native_batch_norm.out(x, weight, bias, mean_c, var_c, False, 0.0, spec.eps,
                                                 out=x, save_mean=unused, save_invstd=unused.clone())
            return x
        return F.batch_norm(x if x.dtype == torch.bfloat16 else x.float(), mean_c, var_c, weight, bias, False,
                            0.0, spec.eps)


_DONATED: dict[int, weakref.ref[torch.Tensor]] = {}


def donate(x: torch.Tensor) -> None:
    """Let :func:`normalize` write its output into ``x``: its caller reads ``x`` no more after the norm.

    A graph backend's segments know this (:mod:`anime_core.inference.backends.onnx_segments`), and
    so does the tiles' :func:`~anime_core.inference.tiling.lean` trace (a convolution's output read
    only by the norm): a norm output is then no fresh map (one per norm and tile: at 2048 px in
    1024 px tiles, a few GB of page-faulted memory per tile for AnimeGAN v2). float32 maps only.
    """
    key = id(x)
    _DONATED[key] = weakref.ref(x, lambda _ref: _DONATED.pop(key, None))


def donated(x: torch.Tensor) -> bool:
    ref = _DONATED.get(id(x))
    return ref is not None and ref() is x


def _register_builtins() -> None:
    from anime_core.layers import SelfAttention

    for kind in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm2d):
        register_norm(kind, _instance_or_batch)
    register_norm(nn.GroupNorm, _group)
    register_global_module(SelfAttention)


_register_builtins()
