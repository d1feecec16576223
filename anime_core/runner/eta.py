"""Estimated times for large images on a CPU, from a measured rate in seconds per megapixel."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from anime_core.fsutil import read_cache_json, write_cache_json
from anime_core.inference import io, video
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.batches import Job

#: on a CPU, an image above this many pixels is announced with its size and an estimated time
ETA_PIXELS = 1_000_000


#: px; the calibration input: smaller ones measure the per-call overhead more than the per-pixel work
CALIBRATION_SIDE = 384


def _read_rate(path: Path) -> tuple[float | None, float]:
    """(seconds per megapixel, seconds per forward) from a rate file, or (None, 0) if it is missing or not one."""
    data = read_cache_json(path)
    try:
        rate, overhead = float(data["rate"]), float(data["overhead"])
    except (ValueError, KeyError, TypeError):
        return None, 0.0
    if not (math.isfinite(rate) and math.isfinite(overhead) and 0 < rate < 1e6 and 0 <= overhead < 1e6):
        return None, 0.0
    return rate, overhead


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Eta:
    """Announces large images on the CPU with an estimated time: seconds per megapixel, measured.

    The rate comes from the run's own batches once one of at least ``CALIBRATION_SIDE``² px has
    run, and before that from the last run's rate for the same model, options, backend, precision,
    device and threads (``$ANIME_HOME/eta``, written after each measured batch), or else from two
    calibration passes (``CALIBRATION_SIDE`` and twice that), which also give a per-forward
    overhead: 1.3-1.7 s before a first large image (AnimeGAN v2 on 2 cores, torch or OpenVINO),
    a quarter of a 2048 px photo's time, now paid once per machine and set-up. A tiled image counts
    the pixels its tiles compute (``pipe.tiling_cost``): 1536x1088 in 512 px tiles, AnimeGAN v2: 8 s
    estimated, 10 s measured.
    """

    def __init__(self, pipe: TranslatePipeline, announce: Callable[[str], None], tile: int | None = None) -> None:
        self.pipe, self.announce, self.tile = pipe, announce, tile
        self.rate: float | None = None  # seconds per input megapixel
        self.overhead = 0.0  # seconds per forward, from the calibration

    def seconds(self, w: int, h: int, tiled: bool) -> float | None:
        """Estimated time of one image; tiles count the pixels they compute (halos included)."""
        if self.rate is None:
            self.rate, self.overhead = _read_rate(self._cache())
        if self.rate is None:
            self.rate = self._calibrate()
        if self.rate is None:
            return None
        cost = self.pipe.tiling_cost(h, w, self.tile) if tiled and hasattr(self.pipe, "tiling_cost") else 1.0
        return self.overhead + self.rate * w * h / 1e6 * cost

    def before(self, group: list[Job]) -> None:
        for job in group:
            w, h = job.image.size
            if w * h <= ETA_PIXELS:
                continue
            mp = w * h / 1e6
            line = f"{job.item.path}: {w}x{h} px ({mp:.1f} MP) on the CPU"
            seconds = self.seconds(w, h, job.tiled)
            if seconds is not None:
                line += f", about {duration(seconds)}"
                small = self.seconds(*(round(v * 1024 / max(w, h)) for v in (w, h)), False)
                if max(w, h) > 1024 and small is not None:
                    line += f" (--size 1024: about {duration(small)})"
            self.announce(line)

    def clip(self, path: Path, size: int | None) -> None:
        """Announce a video's estimated time before it starts: frames x the time of one frame."""
        try:
            av = video._av()
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                frames, w, h = video._expected_frames(stream), stream.codec_context.width, stream.codec_context.height
        except Exception:  # an unreadable clip is reported by the transcode that follows
            return
        if not frames or not w or not h:
            return
        if size and max(w, h) != size:
            w, h = round(w * size / max(w, h)), round(h * size / max(w, h))
        one = self.seconds(w, h, self.pipe.tile_for(h, w, self.tile) is not None)
        if one is not None:
            self.announce(f"{path}: {frames} frames of {w}x{h} px on the CPU, about {duration(one * frames)}")

    def after(self, group: list[Job], seconds: float) -> None:
        if group[0].tiled:  # per computed pixel, as the estimate counts them
            seconds /= self.pipe.tiling_cost(group[0].image.height, group[0].image.width, self.tile)
        pixels = sum(job.image.width * job.image.height for job in group)
        if pixels >= CALIBRATION_SIDE**2:
            self.rate = max(seconds - self.overhead, 0.5 * seconds) / (pixels / 1e6)
            write_cache_json(self._cache(), {"rate": self.rate, "overhead": self.overhead})

    def _cache(self) -> Path:
        """The rate file of this pipeline's set-up: what the speed depends on, not the weights' values."""
        from anime_core.inference.precision import device_kind, options_text
        from anime_core.weights.store import anime_home

        pipe = self.pipe
        setup = [pipe.spec.name, type(pipe).__name__, type(pipe.generator).__name__, options_text(pipe),
                 str(getattr(pipe, "precision", "")), str(torch.get_num_threads()), str(self.tile)]
        digest = hashlib.sha256("\0".join(setup).encode()).hexdigest()[:16]
        return anime_home() / "eta" / f"{pipe.spec.name}-{digest}-{device_kind(pipe)}.json"

    def _calibrate(self) -> float | None:
        """:meth:`_measure`, leaving a pipeline's own tallies (``--faces``: the faces per image) as they were."""
        counts = getattr(self.pipe, "counts", None)
        if counts is not None:
            self.pipe.counts = type(counts)()  # the calibration's grey squares are not the user's images
        try:
            return self._measure()
        finally:
            if counts is not None:
                self.pipe.counts = counts

    def _measure(self) -> float | None:
        """Seconds per megapixel beyond a per-call overhead (kept in ``self.overhead``), from two sizes.

        One size over-estimated large images 1.5x: a forward's fixed cost is a large share of a
        small one (AnimeGAN v2: 13.5 s/MP at 384 px, 8.8 s/MP at 768 px, 9 s/MP over the tiles of
        a 1536 px photo).
        """
        # the first call's one-off set-up is not per-pixel work; if 64 px is too small for this generator,
        # the timed call pays the set-up instead (an over-estimate)
        with contextlib.suppress(RuntimeError, ValueError, io.BadImage):
            self.pipe.forward(torch.full((1, 3, 64, 64), 0.5))
        timed = []
        for side in (CALIBRATION_SIDE, 2 * CALIBRATION_SIDE):
            x = torch.full((1, 3, side, side), 0.5)
            start = time.perf_counter()
            try:
                self.pipe.forward(x)
            except (RuntimeError, ValueError, io.BadImage):
                return None
            timed.append((side * side / 1e6, time.perf_counter() - start))
        (mp0, t0), (mp1, t1) = timed
        rate = (t1 - t0) / (mp1 - mp0)
        if rate <= 0:  # timing noise: no overhead to tell apart
            return t1 / mp1
        self.overhead = max(0.0, t0 - rate * mp0)
        return rate
