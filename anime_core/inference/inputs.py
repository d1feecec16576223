"""What ``pipe(x)`` takes and gives back (DESIGN.md "Public Python API").

A translate pipeline is called with whatever a user holds, and answers in the same kind:

=====================================  ==============================================================
input                                  output
=====================================  ==============================================================
path (``str`` or ``pathlib.Path``)     PIL image (decoded as ``anime run`` decodes files)
PIL image (any mode)                   PIL image
numpy array, HWC (or HW), ``uint8``    numpy array, HWC, ``uint8``
numpy array, HWC (or HW), float        numpy array, HWC, the same float dtype, values in [0, 1]
torch tensor, CHW or NCHW, ``uint8``   torch tensor, the same layout, ``uint8``, on the input's device
torch tensor, CHW or NCHW, float       torch tensor, the same layout and dtype, in [0, 1], same device
list (or tuple) of any of these        list (or tuple) of the outputs, in order
=====================================  ==============================================================

Channels: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), channels last for arrays and first for
tensors (PyTorch's convention). Transparency is kept: the colour is translated and the input's alpha
put back (resized with the colour, if it is), so an image with alpha gives RGBA (an RGBA PIL image,
4 channels) and the alpha values come back as they were given. Float values are intensities in [0,
1] (8-bit values divided by 255); anything outside is refused rather than guessed. A tensor or array
the resize policy leaves as it is goes to the model at its own precision; one that is resized
(``size``, a style's preset, a crop) is resized as 8-bit RGB with Pillow's Lanczos filter, exactly
as a file is. Every kind therefore gives the pixels the PIL path gives (floats: within rounding to 8
bits).

Sizes are checked against ``max_pixels`` (:mod:`anime_core.budget`) before anything is converted
or allocated for the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from anime_core import budget
from anime_core.errors import UsageError
from anime_core.inference import io

if TYPE_CHECKING:
    from anime_core.inference.pipeline import TranslatePipeline

ACCEPTED = ("a path (str or Path), a PIL image, an HWC numpy array (uint8, or float in [0, 1]), a CHW or NCHW "
            "torch tensor (uint8, or float in [0, 1]), or a list of these")
CHANNELS = (1, 2, 3, 4)  # gray, gray + alpha, RGB, RGBA


class InputKindError(UsageError, TypeError):
    """``pipe(x)`` was given something it does not take: a :class:`UsageError` and a ``TypeError`` at once."""


@dataclass
class Prepared:
    """One image as the model takes it, and how to hand the result back in the caller's kind.

    ``image``: (3, H, W) uint8 or float in [0, 1] on the CPU (or on the input tensor's device);
    ``back``: the model's output (3, H', W') float in [0, 1] -> the caller's kind.
    """

    image: torch.Tensor
    back: Callable[[torch.Tensor], Any]


def translate_any(pipe: TranslatePipeline, x: Any, size: int | None = None, tile: int | None = None,
                  max_pixels: int = io.DEFAULT_MAX_PIXELS) -> Any:
    """``pipe(x)``: one input or a list of them, each answered in its own kind (see the module docstring)."""
    if isinstance(x, (list, tuple)):
        for i, item in enumerate(x):
            if isinstance(item, (list, tuple)):
                raise InputKindError(f"item {i} of the list is itself a list; pass {ACCEPTED}")
        return type(x)(translate_any(pipe, item, size, tile, max_pixels) for item in x)
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        _channels(x.shape[1], x.shape, "tensor")
        outs = [translate_any(pipe, image, size, tile, max_pixels) for image in x]
        return torch.stack(outs) if outs else x.clone()
    with pipe.speed_scope():  # the steps around the model (its tiles, if any, run outside this scope)
        item = prepare_input(pipe, x, size, max_pixels)
    y = pipe.translate(item.image, tile)
    with pipe.speed_scope():
        check_finite(y, "this image")
        return item.back(y)


def prepare_input(pipe: TranslatePipeline, x: Any, size: int | None, max_pixels: int) -> Prepared:
    """``x`` (one image of any accepted kind) resized by ``pipe``'s policy, with the way back to its kind."""
    if isinstance(x, (str, Path)):
        path = Path(x).expanduser()
        try:
            img = io.decode(path, max_pixels, keep_alpha=True)
        except io.BadImage as exc:
            raise io.BadImage(f"{path}: {exc}") from None
        return _from_pil(pipe, img, size, max_pixels)
    if isinstance(x, Image.Image):
        budget.check_pixels(*x.size, max_pixels, "this image", error=io.BadImage)
        return _from_pil(pipe, io.with_alpha(x), size, max_pixels)
    if isinstance(x, np.ndarray):
        return _from_array(pipe, x, size, max_pixels)
    if isinstance(x, torch.Tensor):
        return _from_tensor(pipe, x, size, max_pixels)
    raise InputKindError(f"pipe() takes {ACCEPTED}, not {type(x).__module__}.{type(x).__qualname__}")


# -- PIL --------------------------------------------------------------------------------------
def _from_pil(pipe: TranslatePipeline, img: Image.Image, size: int | None, max_pixels: int) -> Prepared:
    """An RGB or RGBA (:func:`io.with_alpha`) image; the alpha is put back on the output."""
    _check_resize(pipe, *img.size, size, max_pixels)
    prepared = pipe.prepare(img, size)
    return Prepared(io.to_tensor(prepared), lambda y: io.restore_alpha(io.to_image(y), prepared))


def _check_resize(pipe: TranslatePipeline, w: int, h: int, size: int | None, max_pixels: int) -> tuple[int, int]:
    """The size ``pipe.prepare`` makes of a ``w`` x ``h`` image, refused above ``max_pixels`` before it is made."""
    io.check_resize(w, h, size or pipe.defaults.get("size"), max_pixels, pipe.crops())
    return pipe.prepared_size(w, h, size)


# -- numpy ------------------------------------------------------------------------------------
def _channels(c: int, shape: tuple[int, ...], what: str) -> None:
    if c not in CHANNELS:
        layout = "HWC (channels last)" if what == "array" else "CHW or NCHW (channels first)"
        article = "an" if what == "array" else "a"
        raise InputKindError(f"{article} {what} image must be {layout} with 1 (gray), 2 (gray, alpha), 3 (RGB) or "
                             f"4 (RGBA) channels, not shape {tuple(shape)}; pass {ACCEPTED}")


def _values(x: np.ndarray | torch.Tensor, what: str) -> None:
    """Refuse a dtype other than uint8 or float, and float values outside [0, 1] (NaN and inf included)."""
    dtype = str(x.dtype).removeprefix("torch.")
    if dtype == "uint8":
        return
    floating = x.dtype.kind == "f" if isinstance(x, np.ndarray) else x.is_floating_point()
    if not floating:
        raise InputKindError(f"a {what} image must be uint8 (0-255) or float (0-1), not {dtype}; pass {ACCEPTED}")
    if x.numel() if isinstance(x, torch.Tensor) else x.size:
        lo, hi = float(x.min()), float(x.max())
        if not (lo >= 0.0 and hi <= 1.0):  # NaN fails both comparisons
            raise UsageError(f"a float {what} image must hold values in [0, 1], not {lo:g}..{hi:g}; divide 8-bit "
                             f"values by 255 (or pass uint8)")


def _from_array(pipe: TranslatePipeline, x: np.ndarray, size: int | None, max_pixels: int) -> Prepared:
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise InputKindError(f"an array image must be HWC (or HW), not {x.ndim}-dimensional; pass {ACCEPTED}")
    h, w, c = x.shape
    _channels(c, x.shape, "array")
    budget.check_pixels(w, h, max_pixels, "this image", error=io.BadImage)
    _values(x, "array")
    # read only; a read-only array (np.asarray of a PIL image) is copied, as torch cannot wrap one without a warning
    tensor = torch.from_numpy(x if x.flags.writeable and x.flags.c_contiguous else np.array(x, order="C"))
    image, alpha = _resized(pipe, tensor.permute(2, 0, 1), size, max_pixels)

    def back(y: torch.Tensor) -> np.ndarray:
        return _with_alpha(_like(y, tensor.dtype), alpha).permute(1, 2, 0).numpy()

    return Prepared(image, back)


# -- torch ------------------------------------------------------------------------------------
def _from_tensor(pipe: TranslatePipeline, x: torch.Tensor, size: int | None, max_pixels: int) -> Prepared:
    if x.ndim != 3:
        raise InputKindError(f"a tensor image must be CHW or NCHW, not {x.ndim}-dimensional; pass {ACCEPTED}")
    c, h, w = x.shape
    _channels(c, x.shape, "tensor")
    budget.check_pixels(w, h, max_pixels, "this image", error=io.BadImage)
    _values(x, "tensor")
    dtype, device = x.dtype, x.device
    image, alpha = _resized(pipe, x.detach(), size, max_pixels)
    return Prepared(image, lambda y: _with_alpha(_like(y, dtype), alpha).to(device))


def _resized(pipe: TranslatePipeline, x: torch.Tensor, size: int | None,
             max_pixels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C, H, W) uint8 or float -> ((3, H', W') colour, (H', W') alpha or None) by the pipeline's resize policy.

    An image the policy leaves as it is keeps its precision; one it resizes goes through Pillow as
    8-bit RGB(A), as a file would (the PIL path's pixels exactly). Where the alpha is 0 the model
    sees white, as :func:`io.to_tensor` shows it an RGBA image.
    """
    c, h, w = x.shape
    target = _check_resize(pipe, w, h, size, max_pixels)
    colour, alpha = (x[:-1], x[-1]) if c in (2, 4) else (x, None)
    colour = colour.expand(3, h, w) if colour.shape[0] == 1 else colour
    if target == (w, h):
        if alpha is not None:
            colour = torch.where(alpha == 0, torch.full_like(colour[:1], 255 if x.dtype == torch.uint8 else 1), colour)
        return colour, alpha
    eight = [t if t.dtype == torch.uint8 else t.float().mul(255).round_().to(torch.uint8)
             for t in (colour, *([] if alpha is None else [alpha[None]]))]
    img = Image.fromarray(torch.cat(eight).permute(1, 2, 0).cpu().numpy(), "RGB" if alpha is None else "RGBA")
    prepared = pipe.prepare(img, size)
    if alpha is None:
        return io.to_tensor(prepared), None
    resized = torch.from_numpy(np.array(prepared.getchannel("A")))
    return io.to_tensor(prepared), resized if x.dtype == torch.uint8 else resized.to(x.dtype) / 255


def _with_alpha(y: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """The output colour (3, H', W') with ``alpha`` as a fourth channel, resized to it if the sizes differ."""
    if alpha is None:
        return y
    if tuple(alpha.shape) != tuple(y.shape[-2:]):
        a = alpha.cpu()
        plane = io.resize_plane(a.numpy() if a.dtype == torch.uint8 else a.float().numpy(), (y.shape[-1], y.shape[-2]))
        alpha = torch.from_numpy(np.ascontiguousarray(plane)).to(alpha.dtype)
    return torch.cat([y, alpha.to(y.device, y.dtype)[None]])


def _like(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The model's float [0, 1] output as ``dtype``: uint8 rounded as a saved file is, floats as computed."""
    if dtype == torch.uint8:
        return y.float().clamp(0, 1).mul_(255).round_().to(torch.uint8)
    return y.clamp(0, 1).to(dtype)


def check_finite(images: torch.Tensor, what: str = "this input") -> None:
    """Raise :class:`~anime_core.inference.io.BadImage` if ``images`` hold NaN or inf (instead of a black file)."""
    # one reduction: a sum in float64 is finite iff every value is (isfinite is four passes; float32 values
    # cannot overflow a float64 sum)
    if not math.isfinite(float(images.sum(dtype=torch.float64))):
        raise io.BadImage(
            f"the model's output for {what} is not finite (NaN or inf); the weights are broken, "
            f"e.g. saved from a diverged training run"
        )
