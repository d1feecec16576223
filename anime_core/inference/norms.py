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

from collections.abc import Callable
from dataclasses import dataclass

import torch
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


def moments(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Per-group (count, sum, sum of squares) of (1, C, h, w) ``x`` (a crop is fine) in float64, shape (3, groups).

    Mean and variance are taken in float32 (accurate: Welford-style), the sums of many tiles in float64.
    """
    g = x.detach()[0].unflatten(0, (groups, -1)).float()  # a view even of a crop: no copy
    var, mean = torch.var_mean(g, dim=(1, 2, 3), correction=0)
    n = g[0].numel()
    mean, var = mean.double(), var.double()
    return torch.stack([torch.full_like(mean, n), mean * n, (var + mean * mean) * n])


def mean_var(sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, sum, sum of squares) -> float32 mean and biased variance, as the norm layers compute them."""
    count, total, squares = sums
    mean = total / count
    return mean.float(), (squares / count - mean * mean).clamp_min(0).float()


def normalize(x: torch.Tensor, spec: NormSpec, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Normalise (1, C, h, w) ``x`` with given per-group statistics, then apply the layer's affine map.

    Computed in float32, as autocast runs the norm layers.
    """
    c = x.shape[1]
    per = c // spec.groups
    scale = torch.rsqrt(var.float() + spec.eps).repeat_interleave(per)
    if spec.weight is not None:
        scale = scale * spec.weight.float()
    shift = -mean.float().repeat_interleave(per) * scale
    if spec.bias is not None:
        shift = shift + spec.bias.float()
    return torch.addcmul(shift.view(1, c, 1, 1), x.float(), scale.view(1, c, 1, 1))


def _register_builtins() -> None:
    from anime_core.layers import SelfAttention

    for kind in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm2d):
        register_norm(kind, _instance_or_batch)
    register_norm(nn.GroupNorm, _group)
    register_global_module(SelfAttention)


_register_builtins()
