"""The ae model's colour space: CIE L*a*b* (the conversion is the core's, :mod:`anime_core.color`).

S. Abbas et al., "Ordinary to Anime: An Artistic & Technical Inquiry using Auto Encoders", train on
the lightness of the photo and predict two chroma channels (section II.D: input (256, 256, 1);
section III: predictions (N, 256, 256, 2); Fig. 2 "grayscaling and normalising"), i.e. the Lab
colour space.
"""

from __future__ import annotations

import torch

from anime_core.color import as_float, lab_to_rgb, rgb_to_lab

__all__ = ["AB_SCALE", "L_HALF", "compose", "lab_to_rgb", "rgb_to_lab", "rgb_to_lightness"]

#: a*/b* are divided by this to bring them to about [-1, 1] (the colourisation field's ``Y /= 128``)
AB_SCALE = 128.0
#: L* in [0, 100] -> [-1, 1] as L / L_HALF - 1
L_HALF = 50.0


def rgb_to_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> the network input: (N, 1, H, W) L* normalised to [-1, 1]."""
    return rgb_to_lab(rgb)[:, :1] / L_HALF - 1.0


def compose(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Normalised L (N, 1, H, W) in [-1, 1] and a*b* / AB_SCALE (N, 2, H, W) -> RGB in [0, 1]."""
    return lab_to_rgb(torch.cat([(as_float(lightness) + 1.0) * L_HALF, as_float(ab) * AB_SCALE], dim=1))
