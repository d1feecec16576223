"""sRGB <-> CIE L*a*b* (D65 white, 2 degree observer) in torch: differentiable, any device, batched.

The CIE formulas with the constants scikit-image uses (``skimage.color.rgb2lab``/``lab2rgb``: sRGB
companding, the sRGB->XYZ matrix of IEC 61966-2-1, D65 white (0.95047, 1, 1.08883), the 0.008856 /
7.787 linear segment), so results match it to 1e-3 (tested), without a copy to the CPU. Only
element-wise ops are used, so autocast never lowers their precision. Used by the ``ae`` plugin
(Abbas et al. predict a*b* from L*) and by ``--keep-colors`` (:mod:`anime_core.inference.controls`).

Tensors are (..., 3, H, W): RGB in [0, 1]; Lab with L in [0, 100] and a, b roughly in [-128, 127].
"""

from __future__ import annotations

import torch

# sRGB (linear) -> XYZ, rows X, Y, Z (IEC 61966-2-1; skimage.color.colorconv.xyz_from_rgb)
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
WHITE_D65 = (0.95047, 1.0, 1.08883)  # CIE 1931 2 degree observer
_EPS = 0.008856  # (6/29)^3, the CIE threshold of the cube-root segment
_KAPPA = 7.787  # slope of the linear segment (1/3 (29/6)^2)
_OFFSET = 16.0 / 116.0


def _matrix(rows: tuple[tuple[float, ...], ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(3, 3) matrix times the channel dim (-3) of x, element-wise (no autocast down-cast)."""
    return (m.view(3, 3, 1, 1) * x.unsqueeze(-4)).sum(-3)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or as it is when it is already float32/float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """Inverse sRGB companding (gradient-safe: the power branch never sees values below its threshold)."""
    high = ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(rgb > 0.04045, high, rgb / 12.92)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """sRGB companding of linear RGB."""
    high = 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(lin > 0.0031308, high, lin * 12.92)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB in [0, 1] -> CIE Lab (L in [0, 100])."""
    rgb = as_float(rgb)
    xyz = _mix(_matrix(XYZ_FROM_RGB, rgb), srgb_to_linear(rgb))
    xyz = xyz / torch.tensor(WHITE_D65, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    f = torch.where(xyz > _EPS, xyz.clamp_min(_EPS) ** (1 / 3), _KAPPA * xyz + _OFFSET)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """(..., 3, H, W) CIE Lab -> sRGB, clipped to [0, 1] unless ``clip=False`` (as skimage, Z < 0 is clipped)."""
    lab = as_float(lab)
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0)], dim=-3)
    xyz = torch.where(f > 0.2068966, f**3, (f - _OFFSET) / _KAPPA)
    xyz = xyz * torch.tensor(WHITE_D65, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    rgb_from_xyz = torch.linalg.inv(torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)).to(lab.dtype).to(lab.device)
    rgb = linear_to_srgb(_mix(rgb_from_xyz, xyz))
    return rgb.clamp(0, 1) if clip else rgb
