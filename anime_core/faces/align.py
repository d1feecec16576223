"""Face alignment: a transform from five landmarks to a template, and projective warps with ``grid_sample``.

As GFPGAN/facexlib (X. Wang et al., "Towards Real-World Blind Face Restoration with Generative
Facial Prior", CVPR 2021) align to the FFHQ template, and as AnimeGANv3's portrait tool pastes
back with a homography. The transform is the homography that takes the four eye and mouth corners
exactly onto the template's (direct linear transform with Hartley's normalisation: R. Hartley, A.
Zisserman, "Multiple View Geometry", 2nd ed., 4.1 and 4.4), so a face whose proportions differ
from the template's is still aligned where the model looks hardest; the nose follows. Where those
points are nearly degenerate (a profile face: the far eye and mouth corner hidden and guessed) and
the homography would bend the crop, the least-squares similarity of all five points (S. Umeyama,
PAMI 1991) is used instead, as facexlib does. Transforms are 3x3 matrices, image -> crop.
Coordinates are continuous pixels: pixel i spans [i, i + 1], its centre is i + 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: the landmarks the homography puts exactly on the template: both eyes and both mouth corners
CORNERS = [0, 1, 3, 4]
#: a homography is refused (similarity used) when it moves a crop corner farther than this fraction of the
#: crop from where the similarity puts it, or flips the crop
MAX_BEND = 0.25


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 similarity minimising sum |M src - dst|^2 over (N, 2) point pairs (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    var = (s ** 2).sum() / len(src)
    scale = float((sig * np.diag(e)).sum() / var) if var > 0 else 1.0
    m = np.eye(3)
    m[:2, :2] = scale * (u @ e @ vt)
    m[:2, 2] = md - m[:2, :2] @ ms
    return m


def _normaliser(p: np.ndarray) -> np.ndarray:
    c = p.mean(0)
    spread = np.sqrt(((p - c) ** 2).sum(1)).mean() or 1.0
    k = np.sqrt(2) / spread
    return np.array([[k, 0, -k * c[0]], [0, k, -k * c[1]], [0, 0, 1]])


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography of least algebraic error over (N >= 4, 2) point pairs (normalised DLT)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ts, td = _normaliser(src), _normaliser(dst)
    a, b = apply(ts, src), apply(td, dst)
    rows = []
    for (x, y), (u, v) in zip(a, b):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
    m = np.linalg.inv(td) @ h @ ts
    return m / m[2, 2]


def fit(src: np.ndarray, dst: np.ndarray, size: int) -> np.ndarray:
    """Image -> crop transform for landmarks ``src`` and template ``dst``: the homography unless it bends the crop."""
    sim = similarity(src, dst)
    try:
        hom = homography(np.asarray(src)[CORNERS], np.asarray(dst)[CORNERS])
    except (np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError):
        return sim
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    back_h = apply(np.linalg.inv(hom), corners)
    back_s = apply(np.linalg.inv(sim), corners)
    scale = np.sqrt(abs(np.linalg.det(sim[:2, :2])))
    w = np.linalg.inv(hom)[2] @ np.c_[corners, np.ones(4)].T  # the crop's corners must stay in front
    if not np.isfinite(back_h).all() or (w <= 0).any():
        return sim
    if np.abs(back_h - back_s).max() * scale > MAX_BEND * size:
        return sim
    return hom


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 3x3 transform ``m`` applied to (N, 2) points."""
    p = np.asarray(points, np.float64) @ m[:2, :2].T + m[:2, 2]
    w = np.asarray(points, np.float64) @ m[2, :2] + m[2, 2]
    return p / w[:, None]


def warp(image: torch.Tensor, m: np.ndarray, height: int, width: int, x0: int = 0, y0: int = 0,
         padding: str = "border") -> torch.Tensor:
    """Bilinear warp of ``image`` (N, C, H, W) by the 3x3 ``m`` (image -> output coordinates).

    Returns the output pixels ``[y0, y0 + height) x [x0, x0 + width)``: output pixel (x, y) takes
    the input at ``m^-1 (x + 0.5, y + 0.5)``.
    """
    h, w = image.shape[-2:]
    inv = torch.as_tensor(np.linalg.inv(m), dtype=torch.float64, device=image.device)
    ys = torch.arange(y0, y0 + height, dtype=torch.float64, device=image.device) + 0.5
    xs = torch.arange(x0, x0 + width, dtype=torch.float64, device=image.device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    d = inv[2, 0] * gx + inv[2, 1] * gy + inv[2, 2]
    sx = (inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]) / d
    sy = (inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]) / d
    grid = torch.stack([sx * (2 / w) - 1, sy * (2 / h) - 1], -1).float()[None].expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode=padding, align_corners=False)


def align(image: torch.Tensor, points: np.ndarray, template: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The ``size`` px crop of ``image`` (1, 3, H, W) with ``points`` on ``template``, and its transform."""
    m = fit(points, template, size)
    return warp(image, m, size, size), m
