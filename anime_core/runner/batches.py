"""Decoded stills grouped into batches of one size, and one batch (or one tiled image) through the model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from anime_core.inference import io
from anime_core.inference.modes import AUTO_TILE_PIXELS
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.inputs import InputFile
from anime_core.runner.options import FileOptions


@dataclass
class Job:
    item: InputFile
    dest: Path
    image: Image.Image
    tiled: bool


def check_size(pipe: TranslatePipeline, size: tuple[int, int], options: FileOptions) -> None:
    """Refuse (``io.BadImage``) an image that ``pipe.prepare`` would resize above ``--max-pixels``, before it does."""
    target = options.size or pipe.defaults.get("size")
    io.check_resize(*size, target, options.max_pixels, pipe.crops())  # as pipe.prepare decides


def tiling(pipe: TranslatePipeline, size: tuple[int, int], options: FileOptions, source: str) -> bool:
    """Whether an image of ``size`` (w, h) runs in tiles; automatic tiling is announced with its reason."""
    w, h = size
    side = pipe.tile_for(h, w, options.tile)
    if side is not None and options.tile is None and options.announce:
        options.announce(f"{source}: {w}x{h} is over {AUTO_TILE_PIXELS / 1e6:.1f} MP: tiling in {side} px tiles, "
                         "which give the untiled result in less memory (--tile 0 turns this off)")
    return side is not None


def groups(jobs: Iterable[Job], batch_size: int) -> Iterator[list[Job]]:
    """Batches of up to ``batch_size`` images of one size; at most about 2x that many images wait."""
    pending: dict[tuple[int, int], list[Job]] = {}
    for job in jobs:
        if job.tiled:  # tiles bound the memory of one huge image: never batched
            yield [job]
            continue
        group = pending.setdefault(job.image.size, [])
        group.append(job)
        if len(group) >= batch_size:
            yield pending.pop(job.image.size)
        elif sum(map(len, pending.values())) > 2 * batch_size:
            yield pending.pop(max(pending, key=lambda k: len(pending[k])))
    yield from pending.values()


def forward(pipe: TranslatePipeline, images: list[Image.Image], tile: int | None, tiled: bool,
            notes: list[str] | None = None, progress: bool = False) -> list[torch.Tensor]:
    """Prepared images of one size -> outputs (3, H, W) in [0, 1]: one batch, or one by one in tiles.

    Why a tiled result is approximate, if it is, is added to ``notes`` (once per distinct remark).
    """
    if not tiled:
        tensors = [io.to_tensor(img) for img in images]
        if pipe.device.type != "cuda":
            return list(pipe.forward(torch.stack(tensors)))
        # page-locked host memory: the forward's non_blocking copy goes by DMA, without a staging copy
        batch = torch.empty((len(tensors), *tensors[0].shape), dtype=torch.uint8, pin_memory=True)
        return list(pipe.forward(torch.stack(tensors, out=batch)))
    outs = []
    for img in images:
        outs.append(pipe.translate(io.to_tensor(img), tile, progress=progress))  # a bar over tiles x segments
        report = getattr(pipe, "last_tiling", None)
        for note in report.notes if report is not None and notes is not None else ():
            if f"tiled output is approximate: {note}" not in notes:
                notes.append(f"tiled output is approximate: {note}")
    return outs
