"""Face alignment: a similarity transform from five landmarks to a template, and warps with ``grid_sample``.

As GFPGAN/facexlib do (X. Wang et al., "Towards Real-World Blind Face Restoration with Generative
Facial Prior", CVPR 2021): the least-squares similarity (rotation, uniform scale, translation; S.
Umeyama, "Least-squares estimation of transformation parameters between two point patterns", PAMI
1991) that takes the detected eyes, nose and mouth corners to the template's, then a bilinear warp.
Coordinates are continuous pixels: pixel i spans [i, i + 1], its centre is i + 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity ``M`` minimising sum |M [src; 1] - dst|^2 over (N, 2) point pairs (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    rot = u @ e @ vt
    var = (s ** 2).sum() / len(src)
    scale = float((sig * np.diag(e)).sum() / var) if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - m[:, :2] @ ms
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``M`` (2x3) applied to (N, 2) points."""
    return np.asarray(points) @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine transform."""
    a = np.linalg.inv(m[:, :2])
    return np.concatenate([a, -a @ m[:, 2:]], 1)


def warp(image: torch.Tensor, m: np.ndarray, height: int, width: int, x0: int = 0, y0: int = 0,
         padding: str = "border") -> torch.Tensor:
    """Bilinear warp of ``image`` (N, C, H, W) by the affine ``m`` (image -> output coordinates).

    Returns the output pixels ``[y0, y0 + height) x [x0, x0 + width)`` of the warped image: output
    pixel (x, y) takes the input at ``m^-1 (x + 0.5, y + 0.5)``.
    """
    h, w = image.shape[-2:]
    inv = torch.as_tensor(invert(m), dtype=torch.float32, device=image.device)
    ys = torch.arange(y0, y0 + height, dtype=torch.float32, device=image.device) + 0.5
    xs = torch.arange(x0, x0 + width, dtype=torch.float32, device=image.device) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    sy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    grid = torch.stack([sx * (2 / w) - 1, sy * (2 / h) - 1], -1)[None].expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode=padding, align_corners=False)


def align(image: torch.Tensor, points: np.ndarray, template: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The ``size`` px crop of ``image`` (1, 3, H, W) whose landmarks ``points`` land on ``template``, and its ``M``."""
    m = similarity(points, template)
    return warp(image, m, size, size), m
