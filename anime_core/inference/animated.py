"""Animated GIF, WebP and PNG, and multi-page TIFF, through a frame function (Pillow).

Every frame is composited by Pillow (GIF disposal, partial WebP frames), flattened to RGB like a
still (:func:`anime_core.inference.io.to_rgb`), translated in batches and written back in the
format the output name asks for, with each frame's duration and the loop count kept (TIFF has
neither). Pillow writes an animation from a list of frames, so the output frames are held in
memory: ``max_pixels`` bounds the frames' total pixel count as well as each frame's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from anime_core.fsutil import atomic_path
from anime_core.inference import io

#: Pillow formats that hold several frames, with the save options that keep their timing
WRITERS = {"GIF": {}, "WEBP": {"quality": 95}, "PNG": {}, "TIFF": {}}
TIMED = {"GIF", "WEBP", "PNG"}  # formats with frame durations and a loop count

FrameFn = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Timing:
    """Per-frame durations in ms (``None`` where the file has none) and the loop count (0: forever)."""

    durations: list[int | None]
    loop: int | None


def can_write(src: Path, dest: Path) -> bool:
    """Whether ``dest`` keeps all of ``src``'s frames: the same format, or one timed format for another."""
    formats = Image.registered_extensions()
    have, want = formats.get(src.suffix.lower()), formats.get(dest.suffix.lower())
    return want in WRITERS and (want == have or (want in TIMED and have in TIMED))


def _frames(im: Image.Image) -> Iterator[tuple[Image.Image, int | None]]:
    for i in range(im.n_frames):
        im.seek(i)
        im.load()  # Pillow sets a WebP frame's duration when it is loaded, not when it is sought
        yield io.to_rgb(ImageOps.exif_transpose(im)), im.info.get("duration")


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of an animated or multi-page image as RGB uint8 (H, W, 3)."""
    with Image.open(path) as im:
        for frame, _ in _frames(im):
            yield np.asarray(frame)


def translate(src: Path, dest: Path, fn: FrameFn, batch_size: int = 1, max_pixels: int = io.DEFAULT_MAX_PIXELS) -> int:
    """Write ``fn`` applied to every frame of ``src`` to ``dest`` (atomically); returns the frame count.

    Raises :class:`~anime_core.inference.io.BadImage` for a file Pillow cannot read to the end or
    whose frames together exceed ``max_pixels``.
    """
    outputs: list[np.ndarray] = []
    durations: list[int | None] = []
    try:
        with Image.open(src) as im:  # files.py decoded the first frame through io.decode's own checks
            n, (w, h) = int(getattr(im, "n_frames", 1)), im.size
            if n * w * h > max_pixels:
                raise io.BadImage(
                    f"animation has {n} frames of {w}x{h} ({n * w * h / 1e6:.3g} MP in all), above the "
                    f"{max_pixels / 1e6:g} MP limit; raise --max-pixels if it is genuine"
                )
            loop = im.info.get("loop")
            batch: list[np.ndarray] = []
            for frame, duration in _frames(im):
                batch.append(np.asarray(frame))
                durations.append(duration)
                if len(batch) >= batch_size:
                    outputs += fn(batch)
                    batch = []
            if batch:
                outputs += fn(batch)
    except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
        raise io.BadImage(f"cannot read frame {len(durations) + 1}: {exc}") from None
    write(outputs, dest, Timing(durations, loop))
    return len(outputs)


def write(frames: list[np.ndarray], dest: Path, timing: Timing) -> None:
    """Save RGB frames as one animated/multi-page file in the format of ``dest``'s extension."""
    fmt = Image.registered_extensions()[dest.suffix.lower()]
    images = [Image.fromarray(np.ascontiguousarray(f), "RGB") for f in frames]
    options: dict = {"save_all": True, "append_images": images[1:], **WRITERS[fmt]}
    if fmt in TIMED:
        if all(d is not None for d in timing.durations):
            options["duration"] = list(timing.durations)
        if timing.loop is not None:
            options["loop"] = timing.loop
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        images[0].save(tmp, format=fmt, **options)
