"""A run from start to end: the pipeline's run mode, or every input translated and written.

Images are decoded ahead (:mod:`~anime_core.runner.prefetch`), grouped by size
(:mod:`~anime_core.runner.batches`), run, checked and written in other threads
(:mod:`~anime_core.runner.outputs`); videos and animations go frame by frame
(:mod:`~anime_core.runner.videos`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.auto import tqdm

from anime_core.errors import UsageError
from anime_core.inference import io, video
from anime_core.inference.inputs import check_finite
from anime_core.inference.modes import RunRequest
from anime_core.inference.pipeline import Pipeline, TranslatePipeline
from anime_core.runner.batches import Job, forward, groups
from anime_core.runner.eta import Eta
from anime_core.runner.inputs import InputFile, collect_inputs
from anime_core.runner.naming import plan_outputs
from anime_core.runner.options import FileOptions
from anime_core.runner.outputs import side_by_side, write, write_mode
from anime_core.runner.prefetch import Ledger, decode_ahead
from anime_core.runner.report import Report, RunInterrupted
from anime_core.runner.sharding import gather_reports, share
from anime_core.runner.videos import translate_video


def run_pipeline(pipe: Pipeline, request: RunRequest, options: FileOptions) -> Report:
    """What ``anime run`` does: the pipeline's run mode if its options chose one, else translate the inputs.

    Under ``accelerate launch`` (``options.processes``) every process translates its share of the inputs
    and returns the report of all of them; a run mode's sheet is written by the main process only.
    """
    start = time.perf_counter()
    state = options.processes
    result = pipe.run_mode(request)
    try:
        if result is not None:
            report = write_mode(result, options.output) if state is None or state.is_main_process else Report()
        elif isinstance(pipe, TranslatePipeline):
            report = translate_files(pipe, list(request.inputs), options)
        else:
            raise UsageError(f"'{pipe.spec.name}' has no run mode for these options")
    except RunInterrupted as exc:
        exc.report.seconds = time.perf_counter() - start
        raise
    report.seconds = time.perf_counter() - start
    return report if state is None else gather_reports(report, state)


def translate_files(pipe: TranslatePipeline, inputs: list[str], options: FileOptions) -> Report:
    """Translate files, folders and globs into ``options.output``; bad files are reported and skipped.

    Images are decoded ``options.prefetch`` batches ahead and written in other threads while the model
    runs; the report lists everything in the order a single thread would (``prefetch=0``). With
    ``options.skip_existing`` an input whose planned output exists is skipped; outputs that existed and
    were overwritten are listed in ``report.replaced``. Ctrl-C raises :class:`RunInterrupted` once the
    outputs already computed are written, with the report so far and the inputs that remain.
    """
    items, failed = collect_inputs(inputs)
    if not items and not failed:
        raise UsageError("no input images given; pass files, folders or globs")
    if not items:  # nothing to run at all: a usage error (exit 2), not "0 written, N failed"
        shown = "; ".join(f"{arg}: {why}" for arg, why in failed[:3]) + (" ..." if len(failed) > 3 else "")
        raise UsageError(f"no input found ({shown}); check the paths")
    jobs, clashes = plan_outputs(items, options.output, options.skip_existing)  # every process: names agree
    report = Report(failed=failed + clashes)
    existed = {dest for _, dest in jobs if dest.exists()}  # before any process writes: what this run replaces
    if options.skip_existing:
        report.skipped = [dest for _, dest in jobs if dest in existed]
        jobs = [(item, dest) for item, dest in jobs if dest not in existed]
    videos = [(item, dest) for item, dest in jobs if video.is_video(item.path)]
    stills = [(item, dest) for item, dest in jobs if not video.is_video(item.path)]
    state = options.processes
    if state is not None:
        state.wait_for_everyone()  # no process writes before all have planned (NAME-1 looks at existing files)
        stills, videos = share(stills, state), share(videos, state)  # a video is one unit
        if not state.is_main_process:
            report.failed, report.skipped = [], []  # reported once, by the main process
    bar = tqdm(total=len(stills), unit="img", disable=not options.progress or len(stills) < 2, desc=pipe.spec.name)
    eta = Eta(pipe, options.announce, options.tile) if options.announce and pipe.device.type == "cpu" else None
    workers = 1 if pipe.device.type == "cpu" else min(4, os.cpu_count() or 1)  # on a CPU the model wants the cores
    ledger: Ledger | None = None
    try:
        with contextlib.ExitStack() as stack:
            writers = readers = None
            if options.prefetch > 0:
                # outputs already computed are still written on Ctrl-C or an error (shutdown waits for them) ...
                writers = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="anime-write"))
                readers = ThreadPoolExecutor(workers, thread_name_prefix="anime-read")
                # ... while images decoded ahead are dropped
                stack.callback(functools.partial(readers.shutdown, cancel_futures=True))
            ledger = Ledger(report, writers, ahead=2 * options.batch_size + workers)  # outputs of about two batches
            ahead = options.prefetch * options.batch_size
            jobs_in = decode_ahead(pipe, stills, options, ledger, bar, readers, ahead)
            for group in groups(stack.enter_context(contextlib.closing(jobs_in)), options.batch_size):
                if eta:
                    eta.before(group)
                start = time.perf_counter()
                translate_group(pipe, group, options, report, ledger)
                if eta:
                    eta.after(group, time.perf_counter() - start)
                bar.update(len(group))
            ledger.drain()
        bar.close()
        for item, dest in videos:
            if eta:
                eta.clip(item.path, options.size)
            translate_video(pipe, item, dest, options, report)
    except KeyboardInterrupt:
        bar.close()
        if ledger is not None:
            ledger.drain()  # the outputs finished while the writer threads were joined
        raise _interrupted(report, [*stills, *videos], existed) from None
    report.replaced = [dest for dest in dict.fromkeys(report.written) if dest in existed]
    return report


def _interrupted(report: Report, jobs: list[tuple[InputFile, Path]], existed: set[Path]) -> RunInterrupted:
    """What a Ctrl-C leaves: the report so far and the inputs neither written nor failed."""
    written = set(report.written)
    report.replaced = [dest for dest in dict.fromkeys(report.written) if dest in existed]
    failed = {path for path, _ in report.failed}
    remaining = [item.path for item, dest in jobs if dest not in written and str(item.path) not in failed]
    return RunInterrupted(report, remaining)


def translate_group(
    pipe: TranslatePipeline, group: list[Job], options: FileOptions, report: Report, ledger: Ledger | None = None
) -> None:
    """One group through the model; its outputs are checked, encoded and written through ``ledger``."""
    ledger = ledger or Ledger(report)
    notes: list[str] = []
    try:
        outs = forward(pipe, [job.image for job in group], options.tile, group[0].tiled, notes, options.progress)
    except io.BadImage as exc:
        ledger.add(Report(failed=[(str(job.item.path), str(exc)) for job in group]))
        return
    except RuntimeError as exc:  # e.g. out of memory: report each file, keep going
        ledger.add(Report(failed=[(str(job.item.path), f"generator failed: {exc}") for job in group]))
        return
    for job, y in zip(group, outs):
        ledger.then(finish, job, y, notes, options)


def finish(job: Job, y: torch.Tensor, notes: list[str], options: FileOptions) -> Report:
    """Check, encode and write one output (in a writer thread: Pillow releases the GIL while it encodes)."""
    part = Report()
    try:
        check_finite(y)
    except io.BadImage as exc:
        part.failed.append((str(job.item.path), str(exc)))
        return part
    part.notes += [(str(job.item.path), note) for note in notes]
    out = io.restore_alpha(io.to_image(y), job.image)
    if options.side_by_side:
        out = side_by_side(job.image, out)
    write(out, job.dest, str(job.item.path), part)
    return part
