"""Finding, decoding and writing images for ``anime run`` (DESIGN.md "Data flow: inference").

Decoding honours EXIF orientation, flattens any mode to RGB (transparency over white) and
refuses truncated files and decompression bombs. Writing is atomic (temp file + rename) and
never replaces an input file.
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from anime_core.errors import UsageError
from anime_core.fsutil import atomic_path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
DEFAULT_MAX_PIXELS = 100_000_000  # 10k x 10k; larger inputs are refused as likely bombs


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: Path  # output name relative to the output folder


def collect_inputs(args: list[str]) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and globs; returns (inputs, [(arg, reason)] for bad args)."""
    found: list[InputFile] = []
    bad: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(InputFile(path, rel))

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                bad.append((arg, "folder holds no images"))
            for f in files:
                add(f, f.relative_to(p))
        elif p.is_file():
            add(p, Path(p.name))
        elif any(ch in arg for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(arg), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                bad.append((arg, "pattern matches no files"))
            for m in matches:
                add(m, Path(m.name))
        else:
            bad.append((arg, "no such file or folder"))
    # two inputs with the same output name (a.jpg from two folders): keep both
    names: dict[Path, int] = {}
    unique = []
    for item in found:
        n = names.get(item.rel, 0)
        names[item.rel] = n + 1
        rel = item.rel if n == 0 else item.rel.with_name(f"{item.rel.stem}-{n}{item.rel.suffix}")
        unique.append(InputFile(item.path, rel))
    return unique, bad


class BadImage(Exception):
    """An input that cannot be decoded; the message is the reason shown to the user."""


def decode(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image as RGB, applying EXIF orientation; raise :class:`BadImage` with a reason."""
    try:
        if path.stat().st_size == 0:
            raise BadImage("file is empty")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise BadImage(
                        f"image is {w}x{h} ({w * h / 1e6:.0f} MP), above the {max_pixels / 1e6:.0f} MP limit; "
                        f"shrink it or raise --max-pixels"
                    )
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    rgba = im.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    return Image.alpha_composite(bg, rgba).convert("RGB")
                return im.convert("RGB")
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(
            "image is too large (possible decompression bomb); raise --max-pixels if it is genuine"
        ) from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            raise BadImage("image file is truncated") from None
        raise BadImage(f"cannot read: {exc.strerror or msg}") from None
    except (ValueError, SyntaxError) as exc:
        raise BadImage(f"corrupt image data ({exc})") from None


def resize_long_side(img: Image.Image, size: int | None, center_crop: bool = False) -> Image.Image:
    """Resize so the long side is ``size`` (or centre-crop to a ``size`` square); ``None`` keeps it."""
    if not size:
        return img
    if center_crop:
        return ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
    w, h = img.size
    scale = size / max(w, h)
    if scale == 1:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def to_image(x: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> PIL RGB."""
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def write_atomic(img: Image.Image, dest: Path) -> None:
    """Save ``img`` to ``dest`` through a temp file in the same folder, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot write images with extension '{dest.suffix}'; use .png or .jpg")
    params = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        img.save(tmp, format=fmt, **params)
