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

    from anime_core.color import lab_to_rgb, rgb_to_lab

    lab = torch.cat([rgb_to_lab(y)[:, :1], rgb_to_lab(x)[:, 1:]], dim=1)
    return lab_to_rgb(lab)
