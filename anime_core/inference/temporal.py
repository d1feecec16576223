"""Frame-to-frame consistency of translated videos: ``--deflicker`` and the flicker measure.

A per-frame network turns tiny input changes (sensor noise, codec noise) into visible output
changes on regions that do not move: flicker. Blind temporal-consistency methods post-process
the output with the input as a guide (Bonneel et al., "Blind Video Temporal Consistency", ACM
TOG 34(6), 2015; Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018) and score
the result by how much the output changes where the input says it should not (Lai et al.,
section 5, "temporal warping error", with optical flow). Both here are the flow-free case:

- :class:`Deflicker` blends each output with the previous *deflickered* output, pixel by pixel,
  with the weight ``strength * max(0, 1 - d / threshold) * max(0, 1 - e / output_threshold)``:
  ``d`` is the input's change at that pixel (mean over RGB, 3x3 box-blurred so single noisy
  pixels do not count as motion), ``e`` the output's change against the previous deflickered
  output. Where the input is still and the output changes a little, the output becomes an
  exponential moving average of the network's outputs. Where the input moves, or the output
  changes a lot (a still region whose output a nearby motion changes through the network's
  receptive field), the network's own output is used, so motion does not leave a trail: a
  temporal form of the bilateral filter. Measured on a moving square through AnimeGAN v2, the
  input gate alone left a trail of 8-9 levels on the square; with both gates it is under 1.
- :func:`flicker` is the mean absolute change between consecutive output frames (0-255 levels,
  mean over RGB) over the pixels whose reference (input) change is under ``STATIC_CHANGE``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

DEFLICKER_STRENGTH = 0.8  # weight of the previous output where the input is perfectly still
DEFLICKER_THRESHOLD = 12 / 255  # input change (0..1) at which blending stops
DEFLICKER_OUTPUT_THRESHOLD = 16 / 255  # output change at which blending stops: larger changes are real
STATIC_CHANGE = 3.0  # levels (0..255): a reference pixel that changes less is "static" for the measure


class Deflicker:
    """Stateful: call once per frame, in order, with the model's input and output for that frame."""

    def __init__(
        self,
        strength: float = DEFLICKER_STRENGTH,
        threshold: float = DEFLICKER_THRESHOLD,
        output_threshold: float = DEFLICKER_OUTPUT_THRESHOLD,
    ) -> None:
        self.strength = strength
        self.threshold = threshold
        self.output_threshold = output_threshold
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x``: input (3, h, w), uint8 or float in [0, 1]; ``y``: output (3, H, W) in [0, 1]; returns the output."""
        import torch.nn.functional as F

        x = x.float() if x.dtype.is_floating_point else x.float() / 255
        y = y.float()
        prev_x, prev_y, self._x = self._x, self._y, x
        if prev_x is None or prev_y is None or prev_x.shape != x.shape or prev_y.shape != y.shape:
            self._y = y  # first frame or a size change: nothing to blend with
            return y
        d = (x - prev_x).abs().mean(0, keepdim=True)[None]
        d = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=False)
        if d.shape[-2:] != y.shape[-2:]:  # super-resolution models: the input is smaller than the output
            d = F.interpolate(d, size=y.shape[-2:], mode="bilinear", align_corners=False)
        e = (y - prev_y).abs().mean(0, keepdim=True)
        w = self.strength * (1 - d[0] / self.threshold).clamp(0, 1) * (1 - e / self.output_threshold).clamp(0, 1)
        out = w * prev_y + (1 - w) * y
        self._y = out
        return out


@dataclass(frozen=True)
class FlickerReport:
    """``value``: mean |change| in levels over static pixels; ``static``: their fraction; ``pairs``: frame pairs."""

    value: float
    static: float
    pairs: int
    threshold: float
    referenced: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "flicker": self.value,
            "static_fraction": self.static,
            "frame_pairs": self.pairs,
            "static_threshold": self.threshold,
            "reference": self.referenced,
        }


def _gray_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(-1)


def flicker(
    frames: Iterable[np.ndarray], reference: Iterable[np.ndarray] | None = None, threshold: float = STATIC_CHANGE
) -> FlickerReport:
    """Flicker of a sequence of RGB uint8 frames (H, W, 3), masked by ``reference``'s static pixels.

    Without a reference every pixel counts, so motion counts as flicker too: compare settings on
    the same clip only. A reference of another size is resized to the frames' size.
    """
    ref_iter = iter(reference) if reference is not None else None
    total = counted = pixels = pairs = 0.0
    prev = prev_ref = None
    for frame in frames:
        ref = None
        if ref_iter is not None:
            ref = next(ref_iter, None)
            if ref is None:
                raise ValueError("the reference has fewer frames than the video")
            if ref.shape[:2] != frame.shape[:2]:
                size = (frame.shape[1], frame.shape[0])
                ref = np.asarray(Image.fromarray(ref).resize(size, Image.Resampling.BILINEAR))
        if prev is not None:
            change = _gray_change(frame, prev)
            mask = _gray_change(ref, prev_ref) < threshold if ref is not None else np.ones(change.shape, bool)
            total += float(change[mask].sum())
            counted += float(mask.sum())
            pixels += mask.size
            pairs += 1
        prev, prev_ref = frame, ref
    if ref_iter is not None and next(ref_iter, None) is not None:
        raise ValueError("the reference has more frames than the video")
    if not pairs:
        raise ValueError("fewer than two frames: nothing to compare")
    return FlickerReport(
        value=total / counted if counted else 0.0,
        static=counted / pixels,
        pairs=int(pairs),
        threshold=threshold,
        referenced=reference is not None,
    )
