"""Pasting stylised faces back: a feathered head mask in template space, warped back with the face.

What is pasted is the model's *change* to the aligned face, warped back to the photo's pixels and
added to the photo there: ``x + W^-1(F(A x) - A x)``, blended over the background with the warped
mask. The photo's own pixels are never resampled, so an identity model gives the input back
exactly whatever the face's size, and a face larger than the model's face size keeps the detail
above the model's resolution (the part of ``x`` that ``W^-1 A`` loses).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from anime_core.faces.align import apply, warp
from anime_core.specs import FaceTemplate


def head_mask(template: FaceTemplate) -> torch.Tensor:
    """(1, 1, S, S) mask in [0, 1]: the template's head ellipse, ramping from 0 at its edge to 1 over ``feather`` px.

    It also reaches 0 two pixels inside the crop's border, so nothing of the warp's padding is pasted.
    """
    s = template.size
    cx, cy, rx, ry = template.mask
    c = torch.arange(s, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(c, c, indexing="ij")
    r = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    inside = (1 - r) * min(rx, ry)  # about the distance to the ellipse's edge, in px
    edge = torch.minimum(torch.minimum(x, s - x), torch.minimum(y, s - y)) - 2
    ramp = torch.clamp(torch.minimum(inside, edge) / max(template.feather, 1e-6), 0, 1)
    return (ramp * ramp * (3 - 2 * ramp))[None, None]  # smoothstep: no visible step at either end


def bounds(m: np.ndarray, size: int, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The photo's pixel box (x0, y0, x1, y1) the crop of transform ``m`` covers, clipped; ``None`` if outside."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    back = apply(np.linalg.inv(m), corners)
    x0, y0 = (max(0, math.floor(v) - 1) for v in back.min(0))
    x1, y1 = min(width, math.ceil(back[:, 0].max()) + 1), min(height, math.ceil(back[:, 1].max()) + 1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def paste(out: torch.Tensor, photo: torch.Tensor, change: torch.Tensor, mask: torch.Tensor, m: np.ndarray) -> None:
    """Blend one face into ``out`` (3, H, W) in place: ``out * (1 - k) + k * (photo + W^-1 change)``.

    ``change`` (1, 3, S, S): the model's output minus its aligned input; ``mask`` (1, 1, S, S); ``m``:
    the photo -> crop transform (3x3); ``k``: the mask warped back.
    """
    h, w = photo.shape[-2:]
    box = bounds(m, change.shape[-1], h, w)
    if box is None:
        return
    x0, y0, x1, y1 = box
    back = warp(torch.cat([change, mask], 1), np.linalg.inv(m), y1 - y0, x1 - x0, x0, y0, padding="zeros")[0]
    k = back[3:]
    region = out[:, y0:y1, x0:x1]
    region.mul_(1 - k).add_(k * (photo[:, y0:y1, x0:x1] + back[:3]))
    region.clamp_(0, 1)
