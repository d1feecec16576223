"""Animated GIF, WebP and PNG, and multi-page TIFF, through a frame function (Pillow).

Every frame is composited by Pillow (GIF disposal, partial WebP frames), flattened to RGB like a
still (:func:`anime_core.inference.io.to_rgb`) or, where it has transparency, kept RGBA so its alpha
is put back on the output (GIF: transparent or not; APNG and WebP: the full alpha), translated in
batches and written back in the format the output name asks for, with each frame's duration and the
loop count kept (TIFF has neither). Pillow writes an animation from a list of frames, so the output
frames are held in memory: ``max_pixels`` bounds the frames' total pixel count as well as each
frame's, checked from the sizes the file declares before any frame is decoded, and the translated
frames held must fit the memory budget (:mod:`anime_core.budget`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from anime_core import budget
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


def _gif_canvases(fp: BinaryIO) -> list[tuple[int, int]]:
    """The canvas size of each frame of a GIF, read from its block headers (no pixel data is decoded).

    A frame may reach past the logical screen; Pillow then grows the canvas for it and the frames
    after it, so frame ``i`` costs the largest extent of frames ``0..i``.
    """
    fp.seek(0)
    head = fp.read(13)
    if len(head) < 13 or head[:3] != b"GIF":
        return []
    w, h = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[10] & 0x80:
        fp.seek(3 << ((head[10] & 7) + 1), 1)
    sizes: list[tuple[int, int]] = []
    while (kind := fp.read(1)) in (b"!", b","):
        if kind == b"!":
            fp.read(1)  # the extension's label
        else:
            d = fp.read(9)
            if len(d) < 9:
                break
            x0, y0 = int.from_bytes(d[0:2], "little"), int.from_bytes(d[2:4], "little")
            w = max(w, x0 + int.from_bytes(d[4:6], "little"))
            h = max(h, y0 + int.from_bytes(d[6:8], "little"))
            sizes.append((w, h))
            if d[8] & 0x80:
                fp.seek(3 << ((d[8] & 7) + 1), 1)
            fp.read(1)  # LZW minimum code size
        while (n := fp.read(1)) and n[0]:  # data sub-blocks, up to a zero-length one
            fp.seek(n[0], 1)
    fp.seek(0)
    return sizes


def frame_sizes(im: Image.Image) -> list[tuple[int, int]]:
    """Every frame's (w, h) as the file declares it, before any frame is decoded.

    A TIFF page has its own size (reading its directory decodes nothing); a GIF frame can grow the
    canvas (:func:`_gif_canvases`); animated WebP and PNG frames share the canvas of the first.
    """
    n = int(getattr(im, "n_frames", 1))
    if im.format == "GIF" and im.fp is not None:
        sizes = _gif_canvases(im.fp)
        return sizes + [im.size] * (n - len(sizes)) if sizes else [im.size] * n
    if im.format == "TIFF":
        current, sizes = im.tell(), []
        for i in range(n):
            im.seek(i)
            sizes.append(im.size)
        im.seek(current)
        return sizes
    return [im.size] * n


def check_frames(sizes: list[tuple[int, int]], max_pixels: int) -> None:
    """Refuse (:class:`~anime_core.inference.io.BadImage`) a frame above ``max_pixels``, or frames above it together.

    The total bounds the decoded frames and the translated ones that are held until the file is written.
    """
    for i, (w, h) in enumerate(sizes):
        budget.check_pixels(w, h, max_pixels, f"frame {i + 1} of {len(sizes)}", error=io.BadImage)
    total = sum(w * h for w, h in sizes)
    if total > max_pixels:
        raise io.BadImage(
            f"animation has {len(sizes)} frames of {budget.fmt_mp(total)} in all, above the {max_pixels / 1e6:g} MP "
            "limit; raise --max-pixels if it is genuine"
        )


def _frames(im: Image.Image, max_pixels: int, keep_alpha: bool = False) -> Iterator[tuple[Image.Image, int | None]]:
    """Each frame, RGB (``keep_alpha``: RGBA where it has transparency), with its duration; its size is checked
    after the seek, before it is decoded."""
    flatten = io.with_alpha if keep_alpha else io.to_rgb
    for i in range(im.n_frames):
        with io.pillow_limit(max_pixels):
            im.seek(i)
            budget.check_pixels(*im.size, max_pixels, f"frame {i + 1}", error=io.BadImage)
            im.load()  # Pillow sets a WebP frame's duration when it is loaded, not when it is sought
            frame = flatten(ImageOps.exif_transpose(im))
        yield frame, im.info.get("duration")


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open ``path`` and check every frame's declared size, decoding none."""
    with io.pillow_limit(max_pixels):
        im = Image.open(path)
    try:
        check_frames(frame_sizes(im), max_pixels)
    except BaseException:
        im.close()
        raise
    return im


def read_frames(path: Path, max_pixels: int = io.DEFAULT_MAX_PIXELS) -> Iterator[np.ndarray]:
    """Every frame of an animated or multi-page image as RGB uint8 (H, W, 3); sizes are checked first."""
    try:
        with _open(path, max_pixels) as im:
            for frame, _ in _frames(im, max_pixels):
                yield np.asarray(frame)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _above(max_pixels, "a frame") from None


def translate(src: Path, dest: Path, fn: FrameFn, batch_size: int = 1, max_pixels: int = io.DEFAULT_MAX_PIXELS) -> int:
    """Write ``fn`` applied to every frame of ``src`` to ``dest`` (atomically); returns the frame count.

    Frames with transparency reach ``fn`` as RGBA (H, W, 4) arrays, the others as RGB; ``fn`` returns
    the alpha it was given on its outputs (:func:`~anime_core.inference.io.restore_alpha`), and the
    file is written with it.

    Raises :class:`~anime_core.inference.io.BadImage` for a file Pillow cannot read to the end, a frame
    above ``max_pixels``, frames above it together (all checked before any is decoded), or translated
    frames that would not fit the memory budget (estimated from the first batch).
    """
    outputs: list[np.ndarray] = []
    durations: list[int | None] = []
    try:
        with _open(src, max_pixels) as im:
            n, loop = int(getattr(im, "n_frames", 1)), im.info.get("loop")
            batch: list[np.ndarray] = []
            for frame, duration in _frames(im, max_pixels, keep_alpha=True):
                batch.append(np.asarray(frame))
                durations.append(duration)
                if len(batch) >= batch_size or len(durations) == n:
                    first = not outputs
                    outputs += fn(batch)
                    batch = []
                    if first:
                        _check_outputs(outputs, n)
            if batch:
                outputs += fn(batch)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own check, if ours missed one
        raise _above(max_pixels, f"frame {len(durations) + 1}") from None
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise io.BadImage(f"cannot read frame {len(durations) + 1}: {exc}") from None
    write(outputs, dest, Timing(durations, loop))
    return len(outputs)


def _above(max_pixels: int, what: str) -> io.BadImage:
    return io.BadImage(f"{what} is above the {max_pixels / 1e6:g} MP limit; raise --max-pixels if it is genuine")


def _check_outputs(first: list[np.ndarray], n: int) -> None:
    """Refuse an animation whose ``n`` translated frames (held until written) would not fit the memory budget."""
    per_frame = sum(a.nbytes for a in first) / len(first)
    # the arrays, and the Pillow images :func:`write` makes of them
    budget.check_bytes(2 * n * per_frame, f"holding {n} translated frames of {first[0].shape[1]}x{first[0].shape[0]}",
                       error=io.BadImage, advice="lower --size or split the animation")


def write(frames: list[np.ndarray], dest: Path, timing: Timing) -> None:
    """Save RGB or RGBA frames as one animated/multi-page file in the format of ``dest``'s extension.

    If any frame has an alpha channel, all are written RGBA; a GIF then clears each frame before the
    next (disposal 2), so a transparent pixel stays transparent instead of showing the frame before.
    """
    fmt = Image.registered_extensions()[dest.suffix.lower()]
    mode = "RGBA" if any(f.ndim == 3 and f.shape[2] == 4 for f in frames) else "RGB"
    images = [Image.fromarray(np.ascontiguousarray(f)).convert(mode) for f in frames]
    options: dict = {"save_all": True, "append_images": images[1:], **WRITERS[fmt]}
    if mode == "RGBA" and fmt == "GIF":
        options["disposal"] = 2
    if fmt in TIMED:
        if all(d is not None for d in timing.durations):
            options["duration"] = list(timing.durations)
        if timing.loop is not None:
            options["loop"] = timing.loop
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        images[0].save(tmp, format=fmt, **options)
