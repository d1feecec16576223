"""``anime_core.run(model, inputs, output, **options)``: the runner of ``anime run`` as one Python call.

The same steps as the command: the model is loaded as :func:`anime_core.load` loads it (or an
already loaded pipeline is used), the options are checked against the same bounds
(:mod:`anime_core.runner.limits`), and :func:`~anime_core.runner.translate.run_pipeline` finds the
inputs (files, folders, globs, videos, animated images), names and writes the outputs and returns
the :class:`~anime_core.runner.report.Report`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anime_core.api import load
from anime_core.errors import UsageError
from anime_core.inference import video
from anime_core.inference.io import DEFAULT_MAX_PIXELS
from anime_core.inference.modes import RunRequest, read_image
from anime_core.inference.pipeline import Pipeline
from anime_core.runner.limits import MIN_SIZE, MIN_TILE, check_samples
from anime_core.runner.options import FileOptions
from anime_core.runner.report import Report
from anime_core.runner.translate import run_pipeline

PathLike = str | os.PathLike[str]


def run(
    model: str | Pipeline,
    inputs: PathLike | Iterable[PathLike] = (),
    output: PathLike | None = None,
    *,
    style: str | None = None,
    weights: PathLike | None = None,
    device: str = "auto",
    precision: str | None = None,
    backend: str | None = None,
    size: int | None = None,
    tile: int | None = None,
    batch_size: int = 1,
    side_by_side: bool = False,
    skip_existing: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    deflicker: bool = False,
    keep_partial: bool = False,
    encode: video.EncodeOptions | None = None,
    num: int = 16,
    seed: int = 0,
    progress: bool = False,
    **model_options: Any,
) -> Report:
    """Run ``model`` over files, folders, globs and videos into ``output``, as ``anime run`` does.

    ``model``: a registered model's name, loaded with ``style`` or ``weights`` and the model's own
    options (``model_options``, e.g. ``variant="v2"``, ``direction="anime2photo"``: what
    :func:`anime_core.load` takes), or a pipeline :func:`anime_core.load` returned (then those
    options are refused: the pipeline has them already).
    ``inputs``: one path or pattern, or several; folders are searched recursively. A generate
    model takes none and draws ``num`` samples from ``seed``.
    ``output``: a folder (default ``anime_out/``) or, for one input or a sheet, a file name.
    The other keywords are ``anime run``'s options of the same name (``--skip-existing`` is
    ``skip_existing=True``; ``encode`` holds the video options). ``progress`` shows progress bars.

    Returns the :class:`~anime_core.runner.report.Report`: ``written``, ``skipped`` and ``replaced``
    paths, ``failed`` inputs with the reason (a bad input is reported there, not raised) and
    ``notes``. A usage error (no input found, a bad option) raises
    :class:`~anime_core.errors.UsageError`; Ctrl-C raises
    :class:`~anime_core.runner.report.RunInterrupted` once the outputs already computed are written.
    """
    _at_least(size, MIN_SIZE, "size")
    if tile not in (None, 0):
        _at_least(tile, MIN_TILE, "tile (0: no tiling)")
    _at_least(batch_size, 1, "batch_size")
    _at_least(max_pixels, 1, "max_pixels")
    encode = encode or video.EncodeOptions()
    video.check_options(encode)  # before the model loads: a typo fails at once
    if isinstance(model, Pipeline):
        given = [name for name, value in (("style", style), ("weights", weights), ("backend", backend))
                 if value is not None] + sorted(model_options)
        if given:
            raise UsageError(f"a loaded pipeline has its weights and options already; leave out {', '.join(given)} "
                             "or pass the model's name")
        pipe = model
    elif isinstance(model, str):
        pipe = load(model, style=style, weights=weights, device=device, precision=precision, backend=backend,
                    **model_options)
    else:
        raise UsageError(f"model must be a model name or a loaded pipeline, not {type(model).__name__}")
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not all(isinstance(item, (str, os.PathLike)) for item in items):
        odd = next(type(item).__name__ for item in items if not isinstance(item, (str, os.PathLike)))
        raise UsageError(f"inputs are paths, folders or patterns, not {odd}; call the pipeline on images in memory")
    names = [os.fspath(item) for item in items]
    if pipe.spec.kind == "generate":
        if names:
            raise UsageError(f"'{pipe.spec.name}' generates from noise and takes no inputs; give num and seed")
        check_samples(pipe, num)  # the count, the memory and the sheet, before anything is drawn
    read = functools.partial(read_image, max_pixels=max_pixels)
    request = RunRequest(inputs=tuple(names), num=num, seed=seed, size=size, batch_size=batch_size, read=read)
    options = FileOptions(
        output=None if output is None else Path(output).expanduser(),
        size=size,
        tile=tile,
        batch_size=batch_size,
        side_by_side=side_by_side,
        max_pixels=max_pixels,
        progress=progress,
        deflicker=deflicker,
        keep_partial=keep_partial,
        encode=encode,
        skip_existing=skip_existing,
    )
    return run_pipeline(pipe, request, options)


def _at_least(value: int | None, least: int, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{name} must be a whole number of at least {least}, not {value!r}")
