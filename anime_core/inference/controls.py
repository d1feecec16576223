"""The user controls every translate model shares: ``--keep-colors`` and ``--strength``.

Both are post-processes of a model's output ``y`` given its input ``x`` (tensors (N, 3, H, W) in
[0, 1], on the pipeline's device), so they work for any generator, on batches, tiles, video and
animation frames alike. :class:`~anime_core.inference.pipeline.TranslatePipeline` applies them
(:meth:`Controls.apply`) after its ``postprocess``.

**Keep colours** is the luminance-only transfer of L. A. Gatys, M. Bethge, A. Hertzmann and
E. Shechtman, "Preserving Color in Neural Artistic Style Transfer" (arXiv:1606.05897, 2016),
section 3: the stylised image's luminance with the photo's colour channels. The paper works in
YIQ; here the split is CIE L*a*b* (D65), the output's L* and the photo's a*b*, because:

- L* is perceived lightness, so the style's lines and shading are kept as they look. YIQ's and
  YCbCr's Y is a weighted sum of gamma-encoded R'G'B', which is not constant-luminance: their
  chroma channels carry part of the lightness of saturated colours, so swapping Y over a photo's
  chroma darkens or brightens red and blue areas;
- a*b* are chroma in a (roughly) perceptually uniform space, so "the colours match the photo's"
  can be stated as a tolerance in them (mean a*b* distance; the tests and the README give it).

A colour of the photo's chroma at the style's lightness can fall outside the sRGB gamut (a
saturated red made much lighter); it is clipped per channel, which is where the a*b* distance to
the photo comes from. The conversion is element-wise torch, so it runs on the pipeline's device
(no copy to the CPU, unlike ``skimage.color.rgb2lab``) with scikit-image's constants.

**Strength** ``s`` in [0, 1] blends the input and the (colour-kept, if asked) output in sRGB:
``x + s (y - x)``. 0 returns the input exactly (the 8-bit input comes back unchanged), 1 the
model's output, and each pixel's distance to the input is ``s`` times the full one, so steps are
monotone; sRGB's encoding is close to perceptual lightness, so equal steps of ``s`` look about
equal, and a blend of two in-gamut colours stays in gamut (a Lab blend would not). This is the
"style degree" users ask for (VToonify's ``--style_degree``) without a model-specific knob.

A model whose own ``anime run`` options already have one of these names keeps its meaning: ``ae``'s
``--strength`` blends only the chroma (its ``lab`` variants always keep the photo's lightness, so
its 0 is the photo too). The core then leaves that control to the model (:func:`owned`).

A model whose output is larger than its input (``out_scale`` > 1, super-resolution) is compared
with its input resized bicubically to the output's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this module's names are read by the CLI without torch
    import torch

    from anime_core.specs import ModelSpec

#: the control keywords of ``anime_core.load`` / options of ``anime run`` (translate models)
NAMES = ("keep_colors", "strength")

# sRGB (linear) -> XYZ, rows X, Y, Z (IEC 61966-2-1, as skimage.color), and the D65 white (2 degree observer)
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.95047, 1.0, 1.08883)
_EPS, _KAPPA, _OFFSET = 0.008856, 7.787, 16.0 / 116.0  # CIE linear segment below (6/29)^3


def _inverse(m: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    """The inverse of a 3x3 matrix (adjugate over determinant; no numpy or torch at import)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    adj = ((e * i - f * h, c * h - b * i, b * f - c * e),
           (f * g - d * i, a * i - c * g, c * d - a * f),
           (d * h - e * g, b * g - a * h, a * e - b * d))
    return tuple(tuple(v / det for v in row) for row in adj)


_RGB_FROM_XYZ = _inverse(_XYZ_FROM_RGB)


def check_strength(value: Any) -> float:
    """``value`` as a float in [0, 1], else a one-sentence :class:`~anime_core.errors.UsageError`."""
    from anime_core.errors import UsageError

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise UsageError(f"strength must be a number from 0 (the photo) to 1 (the full style), not {value!r}")
    return number


def owned(spec: ModelSpec) -> set[str]:
    """The controls ``spec``'s model implements itself (an ``anime run`` option of the same name)."""
    return {str(p.name) for p in spec.run_options if p.name in NAMES}


@dataclass(frozen=True)
class Controls:
    """What to do to a translate model's output: keep the photo's colours, blend with the photo."""

    keep_colors: bool = False
    strength: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_strength(self.strength))
        object.__setattr__(self, "keep_colors", bool(self.keep_colors))

    @classmethod
    def from_options(cls, spec: ModelSpec, options: dict[str, Any]) -> Controls:
        """The core's controls from a pipeline's options; those the model owns (:func:`owned`) stay off."""
        mine = {k: options[k] for k in NAMES if options.get(k) is not None and k not in owned(spec)}
        return cls(**mine)

    @property
    def identity(self) -> bool:
        return not self.keep_colors and self.strength == 1.0

    def apply(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Output ``y`` and input ``x`` ((N, 3, H, W) in [0, 1], one device) -> the controlled output.

        NaN in ``y`` stays NaN (broken weights are still refused, even at strength 0).
        """
        if self.identity:
            return y
        x = match_size(x, y)
        if self.keep_colors:
            y = keep_colors(y, x)
        return y if self.strength == 1.0 else blend(y, x, self.strength)


def match_size(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` as float [0, 1] at ``like``'s size (bicubic, for super-resolution outputs)."""
    import torch.nn.functional as F

    x = x.float() if x.dtype.is_floating_point else x.float() / 255
    if x.shape[-2:] != like.shape[-2:]:
        x = F.interpolate(x, size=like.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return x


def blend(y: torch.Tensor, x: torch.Tensor, strength: float) -> torch.Tensor:
    """``x + strength * (y - x)`` in sRGB: exactly ``x`` at 0 (and NaN where ``y`` is NaN, at every strength)."""
    import torch

    return torch.lerp(x, y.float(), strength)


def keep_colors(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gatys et al. (2016) luminance-only transfer in CIE Lab: ``y``'s L*, ``x``'s a*b*, clipped to sRGB."""
    import torch

    lab = torch.cat([rgb_to_lab(y)[:, :1], rgb_to_lab(x)[:, 1:]], dim=1)
    return lab_to_rgb(lab)


def _mix(rows: tuple[tuple[float, ...], ...], x: torch.Tensor) -> torch.Tensor:
    """A 3x3 matrix times the channel dim (1) of (N, 3, H, W) ``x``."""
    import torch

    m = torch.tensor(rows, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,njhw->nihw", m, x)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> CIE Lab (L* in [0, 100]), skimage's ``rgb2lab`` constants."""
    import torch

    rgb = rgb.float()
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, lin) / torch.tensor(_WHITE, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1 / 3), _KAPPA * xyz + _OFFSET)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) CIE Lab -> sRGB clipped to [0, 1] (NaN stays NaN), skimage's ``lab2rgb`` constants."""
    import torch

    L, a, b = lab.float().unbind(1)
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0)], dim=1)
    xyz = torch.where(f > 0.2068966, f**3, (f - _OFFSET) / _KAPPA)
    xyz = xyz * torch.tensor(_WHITE, device=lab.device).view(1, 3, 1, 1)
    lin = _mix(_RGB_FROM_XYZ, xyz)
    srgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, lin * 12.92)
    return srgb.clamp(0, 1)
