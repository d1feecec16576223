"""Videos (:mod:`anime_core.inference.video`) and animated or multi-page images
(:mod:`anime_core.inference.animated`), frame by frame through the same translation as stills."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anime_core.errors import UsageError
from anime_core.inference import animated, io, video
from anime_core.inference.inputs import check_finite
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.temporal import Deflicker
from anime_core.runner.batches import check_size, forward, tiling
from anime_core.runner.inputs import InputFile
from anime_core.runner.options import FileOptions
from anime_core.runner.outputs import side_by_side
from anime_core.runner.report import Report


def frame_fn(pipe: TranslatePipeline, options: FileOptions, source: str, notes: list[str]) -> video.FrameFn:
    """Frames (RGB arrays) -> translated frames, as a still would be; ``--deflicker`` keeps state across calls.

    Automatic tiling is announced once per clip; remarks on approximate tiles go to ``notes``.
    """
    deflicker = Deflicker() if options.deflicker else None
    tiled: bool | None = None
    pipe = pipe.for_clip() if hasattr(pipe, "for_clip") else pipe  # --faces: face tracks of this clip only

    def fn(frames: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal tiled
        for f in frames:
            check_size(pipe, (f.shape[1], f.shape[0]), options)
        images = [pipe.prepare(Image.fromarray(f), options.size) for f in frames]  # RGB, or RGBA (alpha kept)
        if tiled is None:  # every frame of a clip has one size
            tiled = tiling(pipe, images[0].size, options, source)
        results = []
        for img, y in zip(images, forward(pipe, images, options.tile, tiled, notes)):
            check_finite(y, "this frame")
            if deflicker is not None:
                y = deflicker(io.to_tensor(img), y)
            out = io.restore_alpha(io.to_image(y), img)
            results.append(np.asarray(side_by_side(img, out) if options.side_by_side else out))
        return results

    return fn


def translate_video(
    pipe: TranslatePipeline, item: InputFile, dest: Path, options: FileOptions, report: Report
) -> None:
    source, notes = str(item.path), []
    try:
        result = video.transcode(
            item.path,
            dest,
            frame_fn(pipe, options, source, notes),
            batch_size=options.batch_size,
            options=options.encode,
            keep_partial=options.keep_partial,
            progress=options.progress,
            max_pixels=options.max_pixels,
        )
    except io.BadImage as exc:
        report.failed.append((source, str(exc)))
        return
    except RuntimeError as exc:  # e.g. out of memory: this video fails, the others go on
        report.failed.append((source, f"generator failed: {exc}"))
        return
    except OSError as exc:
        report.failed.append((source, f"cannot write {dest}: {exc}"))
        return
    report.notes += [(source, note) for note in [*notes, *result.notes]]
    report.written.append(dest)
    if result.damage:
        report.failed.append((source, f"{result.damage}; kept the {result.frames} frames before it in {dest}"))


def translate_animated(
    pipe: TranslatePipeline, item: InputFile, dest: Path, options: FileOptions, report: Report
) -> None:
    source, notes = str(item.path), []
    try:
        animated.translate(item.path, dest, frame_fn(pipe, options, source, notes), options.batch_size,
                           options.max_pixels)
    except io.BadImage as exc:
        report.failed.append((source, str(exc)))
    except RuntimeError as exc:
        report.failed.append((source, f"generator failed: {exc}"))
    except (OSError, UsageError) as exc:
        report.failed.append((source, f"cannot write {dest}: {exc}"))
    else:
        report.written.append(dest)
        report.notes += [(source, note) for note in notes]
