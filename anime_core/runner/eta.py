"""Estimated times for large images on a CPU, from a measured rate in seconds per megapixel."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import torch

from anime_core.inference import io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.batches import Job

#: on a CPU, an image above this many pixels is announced with its size and an estimated time
ETA_PIXELS = 1_000_000


#: px; the calibration input: smaller ones measure the per-call overhead more than the per-pixel work
CALIBRATION_SIDE = 384


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Eta:
    """Announces large images on the CPU with an estimated time: seconds per megapixel, measured.

    The rate comes from the run's own batches once one of at least ``CALIBRATION_SIDE``² px has
    run, and before that from one calibration pass. Convolutional generators scale with the pixel
    count: AnimeGAN v2 measured 44 s/MP at 384 px and 42 s/MP at 1536x1088 on a loaded 2-core CPU.
    """

    def __init__(self, pipe: TranslatePipeline, announce: Callable[[str], None]) -> None:
        self.pipe, self.announce = pipe, announce
        self.rate: float | None = None  # seconds per input megapixel

    def before(self, group: list[Job]) -> None:
        for job in group:
            w, h = job.image.size
            if w * h <= ETA_PIXELS:
                continue
            if self.rate is None:
                self.rate = self._calibrate()
            mp = w * h / 1e6
            line = f"{job.item.path}: {w}x{h} px ({mp:.1f} MP) on the CPU"
            if self.rate is not None:
                line += f", about {duration(self.rate * mp)}"
                if max(w, h) > 1024:
                    line += f" (--size 1024: about {duration(self.rate * mp * (1024 / max(w, h)) ** 2)})"
            self.announce(line)

    def after(self, group: list[Job], seconds: float) -> None:
        pixels = sum(job.image.width * job.image.height for job in group)
        if pixels >= CALIBRATION_SIDE**2:
            self.rate = seconds / (pixels / 1e6)

    def _calibrate(self) -> float | None:
        # the first call's one-off set-up is not per-pixel work; if 64 px is too small for this generator,
        # the timed call pays the set-up instead (an over-estimate)
        with contextlib.suppress(RuntimeError, ValueError, io.BadImage):
            self.pipe.forward(torch.full((1, 3, 64, 64), 0.5))
        x = torch.full((1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE), 0.5)
        start = time.perf_counter()
        try:
            self.pipe.forward(x)
        except (RuntimeError, ValueError, io.BadImage):
            return None
        return (time.perf_counter() - start) / (CALIBRATION_SIDE**2 / 1e6)
