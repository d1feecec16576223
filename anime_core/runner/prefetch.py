"""Decoding ahead in worker threads, writing in others, and a report kept in the order of a serial run."""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from tqdm.auto import tqdm

from anime_core.inference import animated, io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.batches import Job, check_size, tiling
from anime_core.runner.inputs import InputFile
from anime_core.runner.options import FileOptions
from anime_core.runner.report import Report
from anime_core.runner.videos import translate_animated

T = TypeVar("T")
R = TypeVar("R")


class Ledger:
    """The report of a run whose outputs are written in worker threads, kept in the order of a serial run.

    ``then(fn, ...)`` runs ``fn`` (which returns a :class:`Report` of what it did) in a writer thread, or at
    once without one; the parts are added to the run's report in the order they were asked for, by the
    calling thread only. At most ``ahead`` parts wait, which bounds the outputs held in memory.
    """

    def __init__(self, report: Report, pool: ThreadPoolExecutor | None = None, ahead: int = 2) -> None:
        self.report, self.pool, self.ahead = report, pool, ahead
        self.pending: deque[Future[Report] | Report] = deque()

    def then(self, fn: Callable[..., Report], *args: Any) -> None:
        self.pending.append(fn(*args) if self.pool is None else self.pool.submit(fn, *args))
        self._settle(self.ahead)

    def add(self, part: Report) -> None:
        self.pending.append(part)
        self._settle(self.ahead)

    def drain(self) -> None:
        """Wait for every pending part; after this the report may be changed directly."""
        self._settle(0)

    def _settle(self, keep: int) -> None:
        while self.pending and (len(self.pending) > keep or _done(self.pending[0])):
            part = self.pending[0]  # removed once added: a Ctrl-C while waiting leaves it for the next drain
            self.report.add(part.result() if isinstance(part, Future) else part)  # re-raises a writer's error
            self.pending.popleft()


def _done(part: Future[Report] | Report) -> bool:
    return not isinstance(part, Future) or part.done()


def prefetched(fn: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor | None, ahead: int) -> Iterator[R]:
    """``map(fn, items)``, computed up to ``ahead`` items in advance in ``pool`` (in order; None: no threads)."""
    if pool is None or ahead < 1:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # the caller stopped early
            future.cancel()


@dataclass
class Decoded:
    """An input as a decode thread leaves it: a prepared image, or why not (``error``), or an animation."""

    item: InputFile
    dest: Path
    image: Image.Image | None = None  # None: failed, or an animation to translate frame by frame
    error: str | None = None
    frames: int = 1


def decode(pipe: TranslatePipeline, options: FileOptions, job: tuple[InputFile, Path]) -> Decoded:
    """Decode and resize one input (in a worker thread: Pillow releases the GIL while it decodes and resizes)."""
    item, dest = job
    try:
        img = io.decode(item.path, options.max_pixels, keep_alpha=True)  # RGBA if transparent: alpha put back
        frames = img.info.get("n_frames", 1)
        if frames > 1 and animated.can_write(item.path, dest):
            return Decoded(item, dest, frames=frames)
        check_size(pipe, img.size, options)
    except io.BadImage as exc:
        return Decoded(item, dest, error=str(exc))
    return Decoded(item, dest, pipe.prepare(img, options.size), frames=frames)


def decode_ahead(
    pipe: TranslatePipeline,
    jobs: list[tuple[InputFile, Path]],
    options: FileOptions,
    ledger: Ledger,
    bar: tqdm,
    pool: ThreadPoolExecutor | None = None,
    ahead: int = 0,
) -> Iterator[Job]:
    """Jobs to translate, in input order; failures and animations are handled here, in the calling thread."""
    for got in prefetched(functools.partial(decode, pipe, options), jobs, pool, ahead):
        item, dest = got.item, got.dest
        if got.error is not None:
            ledger.add(Report(failed=[(str(item.path), got.error)]))
            bar.update(1)
            continue
        if got.image is None:
            ledger.drain()
            translate_animated(pipe, item, dest, options, ledger.report)
            bar.update(1)
            continue
        if got.frames > 1:
            keep = f"a {item.path.suffix} output keeps them all"
            note = f"has {got.frames} frames; only the first is written to {dest.suffix} ({keep})"
            ledger.add(Report(notes=[(str(item.path), note)]))
        tiled = tiling(pipe, got.image.size, options, str(item.path))
        yield Job(item, dest, got.image, tiled)
