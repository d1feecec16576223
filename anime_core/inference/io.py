"""Decoding and writing images (DESIGN.md "Data flow: inference"); finding input files is the CLI's job.

Decoding honours EXIF orientation, flattens any mode to 8-bit RGB (transparency over white,
16/32-bit and float images scaled, not clipped), or with ``keep_alpha`` keeps the alpha as RGBA
for :func:`restore_alpha` to put back on the output, and refuses truncated files and decompression
bombs: ``max_pixels`` is the limit, Pillow's own included. Writing is atomic (temp file + rename).
The module imports no torch at import time, so the light CLI modules may use its constants.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anime_core import budget
from anime_core.errors import AnimeError, UsageError
from anime_core.fsutil import atomic_path

if TYPE_CHECKING:
    import torch

#: Pillow modes with an alpha channel (a palette or colour key with ``info["transparency"]`` has one too)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
DEFAULT_MAX_PIXELS = budget.DEFAULT_MAX_PIXELS
#: formats Pillow writes without an alpha channel: an RGBA output is flattened over white for them
NO_ALPHA = {"JPEG"}

# Pillow's decompression-bomb limit is one process-wide setting; decode sets it to its own
# ``max_pixels`` while it works, so this lock keeps two threads from changing it under each other.
_PILLOW_LIMIT = threading.Lock()


class BadImage(AnimeError):
    """An input that cannot be processed; the message is the reason shown to the user."""


@contextmanager
def pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Make Pillow's ``MAX_IMAGE_PIXELS`` (and its bomb warning, as an error) follow ``max_pixels``.

    Pillow checks sizes when a file is opened and, for GIF, when a frame grows the canvas; any
    code that opens, seeks or loads an image does so inside this, so the raw warning is never printed.
    """
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _too_large(path: Path, max_pixels: int) -> str:
    """The refusal message, with the image's size when its header can be read."""
    advice = "shrink it or raise --max-pixels if it is genuine"
    try:
        with pillow_limit(None), Image.open(path) as im:
            w, h = im.size
    except Exception:  # only the header is read, for the message; any failure keeps the generic one
        return f"image is above the {max_pixels / 1e6:g} MP limit (possible decompression bomb); {advice}"
    return f"image is {w}x{h} ({budget.fmt_mp(w * h)}), above the {max_pixels / 1e6:g} MP limit; {advice}"


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, keep_alpha: bool = False) -> Image.Image:
    """Open an image as 8-bit RGB, applying EXIF orientation; raise :class:`BadImage` with a reason.

    ``keep_alpha``: an image with transparency comes back as RGBA (:func:`with_alpha`) instead of
    flattened over white. An animated or multi-page file gives its first frame, with the number of
    frames in ``img.info["n_frames"]`` so a caller can say that the others were not used.
    """
    try:
        if path.stat().st_size == 0:
            raise BadImage("file is empty")
        with pillow_limit(max_pixels), Image.open(path) as im:
            frames = int(im.n_frames) if getattr(im, "is_animated", False) else 1
            im.load()
            rgb = (with_alpha if keep_alpha else to_rgb)(ImageOps.exif_transpose(im))
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(_too_large(path, max_pixels)) from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            raise BadImage("image file is truncated") from None
        raise BadImage(f"cannot read: {exc.strerror or msg}") from None
    except (ValueError, SyntaxError) as exc:
        raise BadImage(f"corrupt image data ({exc})") from None
    rgb.info["n_frames"] = frames
    return rgb


def has_alpha(im: Image.Image) -> bool:
    """Whether ``im`` has transparency: an alpha channel (RGBA, LA, ...) or a palette/colour key with one."""
    return im.mode in ALPHA_MODES or "transparency" in im.info


def with_alpha(im: Image.Image) -> Image.Image:
    """An image with transparency -> 8-bit RGBA (straight colour, the alpha as it is); any other -> :func:`to_rgb`.

    What the model sees of an RGBA image is :func:`to_tensor`'s colour; :func:`restore_alpha` puts
    the alpha back on the model's output.
    """
    if not has_alpha(im):
        return to_rgb(im)
    if im.mode.startswith("I") or im.mode == "F":  # a 16/32-bit gray with a colour key: scaled as to_rgb does
        key = im.info["transparency"]
        arr = np.asarray(im)
        alpha = np.where(arr == key, 0, 255).astype(np.uint8)
        rgba = to_rgb(im).convert("RGBA")
        rgba.putalpha(Image.fromarray(alpha, "L"))
        return rgba
    return im.convert("RGBA")


def restore_alpha(out: Image.Image, source: Image.Image) -> Image.Image:
    """``out`` (the model's RGB output) with ``source``'s alpha, resized to ``out``'s size if it differs.

    ``source`` is the image the model was given (:func:`with_alpha`, resized and cropped as the
    colour was); without an alpha channel ``out`` is returned as it is.
    """
    if source.mode != "RGBA":
        return out
    alpha = source.getchannel("A")
    if alpha.size != out.size:
        alpha = alpha.resize(out.size, Image.Resampling.LANCZOS)
    rgba = out.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One (H, W) channel (uint8, or float) resized to ``size`` (w, h) with Lanczos, in its own dtype."""
    if plane.shape[::-1] == size:
        return plane
    if plane.dtype == np.uint8:
        return np.asarray(Image.fromarray(plane, "L").resize(size, Image.Resampling.LANCZOS))
    resized = np.asarray(Image.fromarray(plane.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS))
    return np.clip(resized, 0, 1).astype(plane.dtype)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: alpha over white, 16/32-bit integer and float images scaled to 0..255."""
    if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if im.mode.startswith("I") or im.mode == "F":
        return Image.fromarray(scale_to_8bit(np.asarray(im)), "L").convert("RGB")
    return im.convert("RGB")


def scale_to_8bit(arr: np.ndarray) -> np.ndarray:
    """One-channel 16/32-bit integer or float pixels -> uint8 (Pillow's own conversion clips them).

    The range is read from the data, because the container type does not say it: values within
    0..1 are float intensities, within 0..255 already 8-bit, within 0..65535 16-bit (scaled by
    255/65535); anything else (negative, larger, HDR) is stretched from its minimum to its maximum.
    Non-finite values count as 0.
    """
    x = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo >= 0 and hi <= 1 and arr.dtype.kind == "f":
        x = x * 255
    elif lo >= 0 and hi <= 255 and arr.dtype.kind != "u":
        pass
    elif lo >= 0 and hi <= 65535:
        x = x * (255 / 65535)
    elif hi > lo:
        x = (x - lo) * (255 / (hi - lo))
    else:
        x = np.zeros_like(x)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resized_size(width: int, height: int, size: int | None, center_crop: bool = False) -> tuple[int, int]:
    """The (w, h) :func:`resize_long_side` makes of a ``width`` x ``height`` image (computed, nothing allocated)."""
    if center_crop:
        side = size or min(width, height)
        return side, side
    if not size:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_resize(width: int, height: int, size: int | None, max_pixels: int, center_crop: bool = False) -> None:
    """Refuse (:class:`BadImage`) a ``--size`` that would make this image larger than ``max_pixels``."""
    w, h = resized_size(width, height, size, center_crop)
    if (w, h) != (width, height) and w * h > max_pixels:
        raise BadImage(
            f"--size {size} would make this {width}x{height} image {w}x{h} ({budget.fmt_mp(w * h)}), above the "
            f"{max_pixels / 1e6:g} MP limit; use a smaller --size or raise --max-pixels if it is genuine"
        )


def resize_long_side(img: Image.Image, size: int | None, center_crop: bool = False) -> Image.Image:
    """Resize so the long side is ``size`` (or centre-crop to a ``size`` square: without one, the short side's)."""
    if center_crop:
        side = size or min(img.size)
        return ImageOps.fit(img, (side, side), Image.Resampling.LANCZOS)
    if not size:
        return img
    target = resized_size(*img.size, size)
    if target == img.size:
        return img
    return img.resize(target, Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W); of an RGBA image, the colour, white where it is fully transparent.

    Fully transparent pixels have no colour of their own (often black, or left over from editing):
    the model sees white there, as on a flattened image, so they do not bleed into the visible ones.
    """
    import torch

    if img.mode == "RGBA":
        arr = np.array(img, dtype=np.uint8)
        arr[arr[..., 3] == 0, :3] = 255
        return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def to_image(x: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> PIL RGB."""
    import torch

    # one float copy (clamp), scaled and rounded in place: a tiled 8192 px output is 805 MB a copy
    arr = x.detach().float().clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def grid(images: torch.Tensor, nrow: int, padding: int = 2) -> Image.Image:
    """(N, 3, H, W) in [0, 1] -> one sheet of ``nrow`` images per row, ``padding`` px of white between them."""
    from torchvision.utils import make_grid

    return to_image(make_grid(images, nrow=nrow, padding=padding, pad_value=1.0))


def write_atomic(img: Image.Image, dest: Path) -> None:
    """Save ``img`` to ``dest`` through a temp file in the same folder, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot write images with extension '{dest.suffix}'; use .png or .jpg")
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt in NO_ALPHA and has_alpha(img):  # e.g. a transparent PNG written as .jpg: flattened over white
        img = to_rgb(img)
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        img.save(tmp, format=fmt, **params)
