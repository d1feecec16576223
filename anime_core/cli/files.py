"""The file side of ``anime run``: find inputs, name outputs, batch, write atomically, report.

Pipelines only compute (:mod:`anime_core.inference.pipeline`). This module turns files, folders
and globs into input images and videos, gives every input a unique output name, batches images
of equal size, refuses what cannot be processed with a reason per file (never a lost or black
output), and writes what a run mode returns (:class:`~anime_core.inference.modes.ModeOutput`).
Videos (:mod:`anime_core.inference.video`) and animated or multi-page images
(:mod:`anime_core.inference.animated`) go frame by frame through the same translation as stills.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import itertools
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from anime_core.errors import UsageError
from anime_core.inference import animated, io, video
from anime_core.inference.modes import AUTO_TILE_PIXELS, ModeOutput, RunRequest
from anime_core.inference.pipeline import Pipeline, TranslatePipeline, check_finite
from anime_core.inference.temporal import Deflicker

if TYPE_CHECKING:
    from accelerate import PartialState

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_OUTPUT = Path("anime_out")
MEDIA_EXTENSIONS = io.IMAGE_EXTENSIONS | video.VIDEO_EXTENSIONS
#: on a CPU, an image above this many pixels is announced with its size and an estimated time
ETA_PIXELS = 1_000_000
#: px; the calibration input: smaller ones measure the per-call overhead more than the per-pixel work
CALIBRATION_SIDE = 384


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: Path  # output name relative to the output folder


@dataclass(frozen=True)
class FileOptions:
    """The file-handling options of ``anime run``."""

    output: Path | None = None
    size: int | None = None
    tile: int | None = None
    batch_size: int = 1
    side_by_side: bool = False
    max_pixels: int = io.DEFAULT_MAX_PIXELS
    progress: bool = True
    deflicker: bool = False  # videos and animations: see anime_core.inference.temporal
    keep_partial: bool = False  # a damaged video keeps the frames decoded before the damage
    encode: video.EncodeOptions = field(default_factory=video.EncodeOptions)
    #: receives a line per image above ``ETA_PIXELS`` on a CPU (size and estimated time); ``None``: silent
    announce: Callable[[str], None] | None = None
    #: batches decoded ahead (worker threads; outputs are written by others while the model runs); 0: one thread
    prefetch: int = 2
    #: accelerate's state under ``accelerate launch`` (see :func:`process_state`): this process does its share
    processes: PartialState | None = None


@dataclass
class Report:
    """What a run wrote, what failed (path, reason) and what it noted (path, remark)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        return f"{len(set(self.written))} written, {len(self.failed)} failed, {self.seconds:.1f} s"

    def add(self, other: Report) -> None:
        """Append what ``other`` wrote, failed and noted (its time is not added)."""
        self.written += other.written
        self.failed += other.failed
        self.notes += other.notes


def run(pipe: Pipeline, request: RunRequest, options: FileOptions) -> Report:
    """What ``anime run`` does: the pipeline's run mode if its options chose one, else translate the inputs.

    Under ``accelerate launch`` (``options.processes``) every process translates its share of the inputs
    and returns the report of all of them; a run mode's sheet is written by the main process only.
    """
    start = time.perf_counter()
    state = options.processes
    result = pipe.run_mode(request)
    if result is not None:
        report = write_mode(result, options.output) if state is None or state.is_main_process else Report()
    elif isinstance(pipe, TranslatePipeline):
        report = translate_files(pipe, list(request.inputs), options)
    else:
        raise UsageError(f"'{pipe.spec.name}' has no run mode for these options")
    report.seconds = time.perf_counter() - start
    return report if state is None else gather_reports(report, state)


# -- inputs and output names ------------------------------------------------------------------
def _not_regular(path: Path) -> str:
    mode = path.stat().st_mode
    what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"is {what}, not a regular file; save the image to a file first"


#: directory entries one glob pattern may look at before it is refused (a symlink loop, or a whole disk)
GLOB_LIMIT = 200_000


class GlobTooLarge(Exception):
    """A pattern looked at more than ``GLOB_LIMIT`` entries; the message is the reason shown for it."""


def expand_glob(pattern: str, limit: int | None = None) -> list[str]:
    """The paths matching a shell pattern, as :func:`glob.glob` with ``recursive=True`` finds them, bounded.

    ``**`` (a whole component) is any depth of folders; a folder reached twice (a symlink loop, two links to
    one folder) is walked once, and after ``limit`` entries (default ``GLOB_LIMIT``) :class:`GlobTooLarge` is
    raised. As in glob, wildcards do not match names starting with '.' unless the pattern's component does.
    """
    lister = _Lister(GLOB_LIMIT if limit is None else limit)
    anchor, parts = _split_pattern(pattern)
    paths = [anchor]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        step: list[str] = []
        for path in paths:
            if part == "**":  # the folder itself and every folder below; at the end, everything below
                for folder, entries in lister.walk(path):
                    step.append(folder)
                    step += [os.path.join(folder, e.name) for e in entries if last and not e.name.startswith(".")]
            elif glob.has_magic(part):
                hidden = part.startswith(".")
                step += [os.path.join(path, e.name) for e in lister.entries(path)
                         if (hidden or not e.name.startswith(".")) and fnmatch.fnmatch(e.name, part)
                         and (last or _is_dir(e))]
            else:
                joined = os.path.join(path, part)
                if os.path.lexists(joined) if last else os.path.isdir(joined):
                    step.append(joined)
        paths = step
    return [p for p in dict.fromkeys(paths) if p]


class _Lister:
    """Folder listings for one pattern, counted: past ``limit`` entries in all, :class:`GlobTooLarge`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    def entries(self, folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder or os.curdir) as it:
                found = list(itertools.islice(it, self.limit - self.seen + 1))
        except OSError:  # not a folder, gone, no permission: matches nothing, as in glob
            return []
        self.seen += len(found)
        if self.seen > self.limit:
            raise GlobTooLarge(f"the pattern looked at over {self.limit:,} files and folders without finishing; "
                               "give a folder or a narrower pattern")
        return found

    def walk(self, top: str) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
        """``top`` and every folder below it with its entries; each real folder once (symlinks followed,
        loops cut), hidden folders skipped."""
        visited: set[tuple[int, int]] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder or os.curdir)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in visited:
                continue
            visited.add((st.st_dev, st.st_ino))
            entries = self.entries(folder)
            yield folder, entries
            below = sorted(e.name for e in entries if not e.name.startswith(".") and _is_dir(e))
            stack += [os.path.join(folder, name) for name in reversed(below)]  # popped in name order


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _split_pattern(pattern: str) -> tuple[str, list[str]]:
    """(where to start: the root or drive, '' for the current folder; the pattern's components)."""
    drive, rest = os.path.splitdrive(pattern)
    seps = os.sep + (os.altsep or "")
    anchor = drive + rest[: len(rest) - len(rest.lstrip(seps))][:1]
    if os.altsep:
        rest = rest.replace(os.altsep, os.sep)
    return anchor, [p for p in rest.split(os.sep) if p]


def collect_inputs(args: Iterable[str]) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and globs; returns (inputs, [(arg, reason)] for bad args).

    Only regular files are read: a FIFO, socket or device named on the command line is refused
    with that reason (reading one could block forever), and one inside a folder is skipped.
    """
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
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in MEDIA_EXTENSIONS and f.is_file())
            if not files:
                bad.append((arg, "folder holds no images or videos"))
            for f in files:
                add(f, f.relative_to(p))
        elif p.is_file():
            add(p, Path(p.name))
        elif p.exists():
            bad.append((arg, _not_regular(p)))
        elif any(ch in arg for ch in "*?["):
            try:
                matches = sorted(Path(m) for m in expand_glob(os.path.expanduser(arg)))
            except GlobTooLarge as exc:
                bad.append((arg, str(exc)))
                continue
            odd = [m for m in matches if m.exists() and not (m.is_file() or m.is_dir())]
            bad += [(str(m), _not_regular(m)) for m in odd]
            files = [m for m in matches if m.is_file()]
            if not files and not odd:
                bad.append((arg, "pattern matches no files"))
            for m in files:
                add(m, Path(m.name))
        else:
            bad.append((arg, "no such file or folder"))
    return found, bad


def unique_names(rels: list[Path], folder: Path) -> list[Path]:
    """One output name per input, all different (ignoring case, as some file systems do).

    An input keeps its own name if it is the first to claim it. A later input with a taken name
    gets ``NAME-1``, ``NAME-2`` ... skipping names another input keeps, names already given and
    files that exist in ``folder``, so an invented name never replaces anything.
    """

    def key(rel: Path) -> str:
        return rel.as_posix().casefold()

    owner: dict[str, int] = {}
    for i, rel in enumerate(rels):
        owner.setdefault(key(rel), i)
    taken = set(owner)
    names = []
    for i, rel in enumerate(rels):
        name, n = rel, 0
        if owner[key(rel)] != i:
            while key(name) in taken or (folder / name).exists():
                n += 1
                name = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
            taken.add(key(name))
        names.append(name)
    return names


def plan_outputs(
    items: list[InputFile], output: Path | None
) -> tuple[list[tuple[InputFile, Path]], list[tuple[str, str]]]:
    """(input, destination) pairs and [(input, reason)] for those whose destination is an input."""
    out = output or DEFAULT_OUTPUT
    if out.suffix.lower() in MEDIA_EXTENSIONS and not out.is_dir():
        if len(items) > 1:
            raise UsageError(f"-o {out} names one file but {len(items)} inputs were given; give a folder")
        if items and video.is_video(items[0].path) != video.is_video(out):
            what = "a video" if video.is_video(out) else "an image"
            raise UsageError(
                f"-o {out} names {what} but {items[0].path} is not one; give a {items[0].path.suffix} name or a folder"
            )
        dests = [out] * len(items)
    else:
        dests = [out / rel for rel in unique_names([i.rel for i in items], out)]
    inputs = {i.path.resolve() for i in items}
    jobs, failed = [], []
    for item, dest in zip(items, dests):
        if dest.resolve() in inputs:
            failed.append((str(item.path), f"output {dest} would overwrite an input; choose another -o"))
        else:
            jobs.append((item, dest))
    return jobs, failed


# -- translating -------------------------------------------------------------------------------
@dataclass
class _Job:
    item: InputFile
    dest: Path
    image: Image.Image
    tiled: bool


def translate_files(pipe: TranslatePipeline, inputs: list[str], options: FileOptions) -> Report:
    """Translate files, folders and globs into ``options.output``; bad files are reported and skipped.

    Images are decoded ``options.prefetch`` batches ahead and written in other threads while the model
    runs; the report lists everything in the order a single thread would (``prefetch=0``).
    """
    items, failed = collect_inputs(inputs)
    if not items and not failed:
        raise UsageError("no input images given; pass files, folders or globs")
    if not items:  # nothing to run at all: a usage error (exit 2), not "0 written, N failed"
        shown = "; ".join(f"{arg}: {why}" for arg, why in failed[:3]) + (" ..." if len(failed) > 3 else "")
        raise UsageError(f"no input found ({shown}); check the paths")
    jobs, clashes = plan_outputs(items, options.output)  # on the full list in every process: names agree
    report = Report(failed=failed + clashes)
    videos = [(item, dest) for item, dest in jobs if video.is_video(item.path)]
    stills = [(item, dest) for item, dest in jobs if not video.is_video(item.path)]
    state = options.processes
    if state is not None:
        state.wait_for_everyone()  # no process writes before all have planned (NAME-1 looks at existing files)
        stills, videos = _share(stills, state), _share(videos, state)  # a video is one unit
        if not state.is_main_process:
            report.failed = []  # bad arguments and clashes are reported once, by the main process
    bar = tqdm(total=len(stills), unit="img", disable=not options.progress or len(stills) < 2, desc=pipe.spec.name)
    eta = _Eta(pipe, options.announce, options.tile) if options.announce and pipe.device.type == "cpu" else None
    workers = 1 if pipe.device.type == "cpu" else min(4, os.cpu_count() or 1)  # on a CPU the model wants the cores
    with contextlib.ExitStack() as stack:
        writers = readers = None
        if options.prefetch > 0:
            # outputs already computed are still written on Ctrl-C or an error (shutdown waits for them) ...
            writers = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="anime-write"))
            readers = ThreadPoolExecutor(workers, thread_name_prefix="anime-read")
            # ... while images decoded ahead are dropped
            stack.callback(functools.partial(readers.shutdown, cancel_futures=True))
        ledger = _Ledger(report, writers, ahead=2 * options.batch_size + workers)  # outputs of about two batches
        ahead = options.prefetch * options.batch_size
        decoded = stack.enter_context(contextlib.closing(_decoded(pipe, stills, options, ledger, bar, readers, ahead)))
        for group in _groups(decoded, options.batch_size):
            if eta:
                eta.before(group)
            start = time.perf_counter()
            _translate(pipe, group, options, report, ledger)
            if eta:
                eta.after(group, time.perf_counter() - start)
            bar.update(len(group))
        ledger.drain()
    bar.close()
    for item, dest in videos:
        if eta:
            eta.clip(item.path, options.size)
        _translate_video(pipe, item, dest, options, report)
    return report


class _Ledger:
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
            part = self.pending.popleft()
            self.report.add(part.result() if isinstance(part, Future) else part)  # re-raises a writer's error


def _done(part: Future[Report] | Report) -> bool:
    return not isinstance(part, Future) or part.done()


def _prefetched(fn: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor | None, ahead: int) -> Iterator[R]:
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
class _Decoded:
    """An input as a decode thread leaves it: a prepared image, or why not (``error``), or an animation."""

    item: InputFile
    dest: Path
    image: Image.Image | None = None  # None: failed, or an animation to translate frame by frame
    error: str | None = None
    frames: int = 1


def _decode(pipe: TranslatePipeline, options: FileOptions, job: tuple[InputFile, Path]) -> _Decoded:
    """Decode and resize one input (in a worker thread: Pillow releases the GIL while it decodes and resizes)."""
    item, dest = job
    try:
        img = io.decode(item.path, options.max_pixels)
        frames = img.info.get("n_frames", 1)
        if frames > 1 and animated.can_write(item.path, dest):
            return _Decoded(item, dest, frames=frames)
        _check_size(pipe, img.size, options)
    except io.BadImage as exc:
        return _Decoded(item, dest, error=str(exc))
    return _Decoded(item, dest, pipe.prepare(img, options.size), frames=frames)


def _check_size(pipe: TranslatePipeline, size: tuple[int, int], options: FileOptions) -> None:
    """Refuse (``io.BadImage``) an image that ``pipe.prepare`` would resize above ``--max-pixels``, before it does."""
    target = options.size or pipe.defaults.get("size")
    crop = bool(pipe.defaults.get("center_crop")) and not pipe.options.get("no_crop")  # as pipe.prepare decides
    io.check_resize(*size, target, options.max_pixels, crop)


def _decoded(
    pipe: TranslatePipeline,
    jobs: list[tuple[InputFile, Path]],
    options: FileOptions,
    ledger: _Ledger,
    bar: tqdm,
    pool: ThreadPoolExecutor | None = None,
    ahead: int = 0,
) -> Iterator[_Job]:
    """Jobs to translate, in input order; failures and animations are handled here, in the calling thread."""
    for got in _prefetched(functools.partial(_decode, pipe, options), jobs, pool, ahead):
        item, dest = got.item, got.dest
        if got.error is not None:
            ledger.add(Report(failed=[(str(item.path), got.error)]))
            bar.update(1)
            continue
        if got.image is None:
            ledger.drain()
            _translate_animated(pipe, item, dest, options, ledger.report)
            bar.update(1)
            continue
        if got.frames > 1:
            keep = f"a {item.path.suffix} output keeps them all"
            note = f"has {got.frames} frames; only the first is written to {dest.suffix} ({keep})"
            ledger.add(Report(notes=[(str(item.path), note)]))
        tiled = _tiling(pipe, got.image.size, options, str(item.path))
        yield _Job(item, dest, got.image, tiled)


def _tiling(pipe: TranslatePipeline, size: tuple[int, int], options: FileOptions, source: str) -> bool:
    """Whether an image of ``size`` (w, h) runs in tiles; automatic tiling is announced with its reason."""
    w, h = size
    side = pipe.tile_for(h, w, options.tile)
    if side is not None and options.tile is None and options.announce:
        options.announce(f"{source}: {w}x{h} is over {AUTO_TILE_PIXELS / 1e6:.1f} MP: tiling in {side} px tiles, "
                         "which give the untiled result in less memory (--tile 0 turns this off)")
    return side is not None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class _Eta:
    """Announces large images on the CPU with an estimated time: seconds per megapixel, measured.

    The rate comes from the run's own batches once one of at least ``CALIBRATION_SIDE``² px has
    run, and before that from two calibration passes (``CALIBRATION_SIDE`` and twice that), which
    also give a per-forward overhead. A tiled image counts the pixels its tiles compute
    (``pipe.tiling_cost``): 1536x1088 in 512 px tiles, AnimeGAN v2: 8 s estimated, 10 s measured.
    """

    def __init__(self, pipe: TranslatePipeline, announce: Callable[[str], None], tile: int | None = None) -> None:
        self.pipe, self.announce, self.tile = pipe, announce, tile
        self.rate: float | None = None  # seconds per input megapixel
        self.overhead = 0.0  # seconds per forward, from the calibration

    def seconds(self, w: int, h: int, tiled: bool) -> float | None:
        """Estimated time of one image; tiles count the pixels they compute (halos included)."""
        if self.rate is None:
            self.rate = self._calibrate()
        if self.rate is None:
            return None
        cost = self.pipe.tiling_cost(h, w, self.tile) if tiled and hasattr(self.pipe, "tiling_cost") else 1.0
        return self.overhead + self.rate * w * h / 1e6 * cost

    def before(self, group: list[_Job]) -> None:
        for job in group:
            w, h = job.image.size
            if w * h <= ETA_PIXELS:
                continue
            mp = w * h / 1e6
            line = f"{job.item.path}: {w}x{h} px ({mp:.1f} MP) on the CPU"
            seconds = self.seconds(w, h, job.tiled)
            if seconds is not None and self.rate is not None:
                line += f", about {_duration(seconds)}"
                if max(w, h) > 1024:
                    line += f" (--size 1024: about {_duration(self.rate * mp * (1024 / max(w, h)) ** 2)})"
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
            self.announce(f"{path}: {frames} frames of {w}x{h} px on the CPU, about {_duration(one * frames)}")

    def after(self, group: list[_Job], seconds: float) -> None:
        if group[0].tiled:  # per computed pixel, as the estimate counts them
            seconds /= self.pipe.tiling_cost(group[0].image.height, group[0].image.width, self.tile)
        pixels = sum(job.image.width * job.image.height for job in group)
        if pixels >= CALIBRATION_SIDE**2:
            self.rate = max(seconds - self.overhead, 0.5 * seconds) / (pixels / 1e6)

    def _calibrate(self) -> float | None:
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


def _groups(jobs: Iterable[_Job], batch_size: int) -> Iterator[list[_Job]]:
    """Batches of up to ``batch_size`` images of one size; at most about 2x that many images wait."""
    pending: dict[tuple[int, int], list[_Job]] = {}
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


def _forward(pipe: TranslatePipeline, images: list[Image.Image], tile: int | None, tiled: bool,
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


def _translate(
    pipe: TranslatePipeline, group: list[_Job], options: FileOptions, report: Report, ledger: _Ledger | None = None
) -> None:
    """One group through the model; its outputs are checked, encoded and written through ``ledger``."""
    ledger = ledger or _Ledger(report)
    notes: list[str] = []
    try:
        outs = _forward(pipe, [job.image for job in group], options.tile, group[0].tiled, notes, options.progress)
    except io.BadImage as exc:
        ledger.add(Report(failed=[(str(job.item.path), str(exc)) for job in group]))
        return
    except RuntimeError as exc:  # e.g. out of memory: report each file, keep going
        ledger.add(Report(failed=[(str(job.item.path), f"generator failed: {exc}") for job in group]))
        return
    for job, y in zip(group, outs):
        ledger.then(_finish, job, y, notes, options)


def _finish(job: _Job, y: torch.Tensor, notes: list[str], options: FileOptions) -> Report:
    """Check, encode and write one output (in a writer thread: Pillow releases the GIL while it encodes)."""
    part = Report()
    try:
        check_finite(y)
    except io.BadImage as exc:
        part.failed.append((str(job.item.path), str(exc)))
        return part
    part.notes += [(str(job.item.path), note) for note in notes]
    out = io.to_image(y)
    if options.side_by_side:
        out = _side_by_side(job.image, out)
    _write(out, job.dest, str(job.item.path), part)
    return part


# -- videos and animations ---------------------------------------------------------------------
def _frame_fn(pipe: TranslatePipeline, options: FileOptions, source: str, notes: list[str]) -> video.FrameFn:
    """Frames (RGB arrays) -> translated frames, as a still would be; ``--deflicker`` keeps state across calls.

    Automatic tiling is announced once per clip; remarks on approximate tiles go to ``notes``.
    """
    deflicker = Deflicker() if options.deflicker else None
    tiled: bool | None = None

    def fn(frames: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal tiled
        for f in frames:
            _check_size(pipe, (f.shape[1], f.shape[0]), options)
        images = [pipe.prepare(Image.fromarray(f, "RGB"), options.size) for f in frames]
        if tiled is None:  # every frame of a clip has one size
            tiled = _tiling(pipe, images[0].size, options, source)
        results = []
        for img, y in zip(images, _forward(pipe, images, options.tile, tiled, notes)):
            check_finite(y, "this frame")
            if deflicker is not None:
                y = deflicker(io.to_tensor(img), y)
            out = io.to_image(y)
            results.append(np.asarray(_side_by_side(img, out) if options.side_by_side else out))
        return results

    return fn


def _translate_video(
    pipe: TranslatePipeline, item: InputFile, dest: Path, options: FileOptions, report: Report
) -> None:
    source, notes = str(item.path), []
    try:
        result = video.transcode(
            item.path,
            dest,
            _frame_fn(pipe, options, source, notes),
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


def _translate_animated(
    pipe: TranslatePipeline, item: InputFile, dest: Path, options: FileOptions, report: Report
) -> None:
    source, notes = str(item.path), []
    try:
        animated.translate(item.path, dest, _frame_fn(pipe, options, source, notes), options.batch_size,
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


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    if left.size != right.size:
        left = left.resize(right.size, Image.Resampling.LANCZOS)
    both = Image.new("RGB", (left.width + right.width, right.height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    return both


def _write(img: Image.Image, dest: Path, source: str, report: Report) -> None:
    try:
        io.write_atomic(img, dest)
    except (OSError, UsageError) as exc:
        report.failed.append((source, f"cannot write {dest}: {exc}"))
        return
    report.written.append(dest)


# -- many processes (accelerate launch) -------------------------------------------------------
def process_state(device: str = "auto") -> PartialState | None:
    """accelerate's state when this is one of several processes (``accelerate launch``), else None.

    ``device`` is ``--device``: on a CPU the processes talk through gloo (accelerate's ``cpu=True``;
    without it, CPU-only processes would each take the whole run). A single process imports no
    accelerate and creates no process group.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def end_processes(state: PartialState | None) -> None:
    """Tear the process group down once the last collective is done, while the interpreter is whole.

    Left to interpreter exit, a gloo worker thread may still be releasing the finished all-gather of
    :func:`gather_reports` (its tensors hold Python objects) when finalisation starts: it then needs
    the GIL, is ended by Python in the middle of a C++ destructor, and ``std::terminate`` aborts the
    process ("terminate called without an active exception", SIGABRT) after every file was written.
    ``destroy_process_group`` joins those threads first. Decode and write threads are already joined
    by :func:`translate_files` (its pools are shut down with ``wait=True``).
    """
    if state is not None:
        state.destroy_process_group()  # a no-op when no group exists


def _share(jobs: list[T], state: PartialState) -> list[T]:
    """This process's contiguous share of ``jobs`` (accelerate's ``split_between_processes``)."""
    with state.split_between_processes(jobs) as mine:
        return list(mine)


def gather_reports(report: Report, state: PartialState) -> Report:
    """Every process's report, merged in process order (each process gets the whole); time: the slowest."""
    from accelerate.utils import gather_object

    parts: list[Report] = gather_object([report])
    merged = Report(seconds=max(part.seconds for part in parts))
    for part in parts:
        merged.add(part)
    return merged


# -- run modes ---------------------------------------------------------------------------------
def write_mode(result: ModeOutput, output: Path | None) -> Report:
    """Write a mode's images: one sheet to ``-o FILE``, else ``NAME.png`` or ``NAME-000.png`` ... in a folder.

    Without ``-o``, a sheet goes to the current folder and frames to ``anime_out/``.
    """
    report = Report()
    try:
        check_finite(result.images, f"'{result.name}'")
    except io.BadImage as exc:
        report.failed.append((result.name, str(exc)))
        return report
    if output is not None and output.suffix.lower() in io.IMAGE_EXTENSIONS and not output.is_dir():
        targets = [(output, None)]
    elif result.frames:
        folder = output or DEFAULT_OUTPUT
        targets = [(folder / f"{result.name}-{i:03d}.png", i) for i in range(len(result.images))]
    else:
        targets = [((output or Path()) / f"{result.name}.png", None)]
    for dest, index in targets:
        if index is None:
            img = io.grid(result.images, result.nrow, result.padding)
        else:
            img = io.to_image(result.images[index])
        _write(img, dest, result.name, report)
    return report
