"""What the web app's buttons do, without gradio: load a pipeline, run it through the runner.

Every run goes the way ``anime run`` goes: :func:`anime_core.load` builds the pipeline from the
registry and :func:`anime_core.runner.translate.run_pipeline` decodes, resizes, tiles, runs the model's run mode
and writes atomically. The app only chooses the input file and the output name, so the web app
and the command line cannot drift apart. Errors are :class:`~anime_core.errors.AnimeError`
sentences, shown by the app as they are.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from anime_core import budget
from anime_core.api import load
from anime_core.errors import AnimeError, UsageError
from anime_core.inference import io
from anime_core.inference.modes import RunRequest, read_image
from anime_core.inference.pipeline import Pipeline, TranslatePipeline
from anime_core.inference.video import EncodeOptions
from anime_core.registry import get_registry
from anime_core.runner.limits import MIN_SIZE, MIN_TILE
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import run_pipeline
from anime_core.ui.controls import applied
from anime_core.ui.options import convert
from anime_core.weights.store import anime_home, cache_status, cached_path, fetch_style

#: pipelines kept loaded between clicks (a model with its weights is the slow part of a run)
CACHED_PIPELINES = 2
MAX_COUNT = 64  # images on one Generate sheet; ``anime run MODEL --num N`` makes more
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed takes


def max_side(max_pixels: int = budget.DEFAULT_MAX_PIXELS) -> int:
    """The largest Size / Tile a form may ask for: a square of that side stays within ``max_pixels``."""
    return math.isqrt(max_pixels)


@dataclass(frozen=True)
class Weights:
    """Which weights a run uses: an uploaded file wins over a style."""

    model: str
    style: str | None = None
    file: str | None = None

    @property
    def label(self) -> str:
        if self.file:
            return f"{self.model} + {Path(self.file).name}"
        return f"{self.model}:{self.style}" if self.style else self.model


@dataclass
class Result:
    """What a run wrote (``files``), the input as the model saw it (``shown``), and a one-line summary."""

    files: list[Path]
    shown: Path | None = None
    message: str = ""


@dataclass
class Workspace:
    """A folder for this app's outputs, one numbered sub-folder per run (outputs are never overwritten)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="anime-ui-")))
    _count: Any = field(default_factory=itertools.count)

    def folder(self, what: str) -> Path:
        path = self.root / f"{next(self._count):04d}-{what}"
        path.mkdir(parents=True)
        return path


# -- the registry ------------------------------------------------------------------------------
def model_names(kind: str | None = None, trainable: bool = False) -> list[str]:
    """Registered models, optionally of one kind (``translate``/``generate``) or with a training task."""
    models = get_registry().models
    return sorted(
        name for name, spec in models.items()
        if (kind is None or spec.kind == kind) and (not trainable or spec.task is not None)
    )


def style_names(model: str | None) -> list[str]:
    if not model or model not in get_registry().models:
        return []
    return sorted(get_registry().styles_of(model))


def recorded_model(file: str | None) -> str | None:
    """The registered model a native weights file names in its metadata (``None`` for foreign or unreadable files)."""
    if not file or not str(file).endswith(".safetensors"):
        return None
    try:
        with safe_open(str(file), framework="pt") as fh:
            model = (fh.metadata() or {}).get("model")
    except Exception:  # not readable as safetensors: loading it will say why
        return None
    return model if model in get_registry().models else None


def default_style(model: str | None) -> str | None:
    """The style a picker starts on: the model's declared ``default_style``; without one (or if it names no style
    of the model), the first whose weights are cached (runs at once), else the first."""
    reg = get_registry()
    styles = reg.styles_of(model) if model in reg.models else {}
    declared = reg.models[model].default_style if model in reg.models else ""
    if declared in styles:
        return declared
    cached = [name for name, spec in sorted(styles.items()) if cached_path(spec.key, spec.source).is_file()]
    return (cached or sorted(styles) or [None])[0]


def weights_note(model: str | None, style: str | None, file: str | None = None) -> tuple[str, bool]:
    """A Markdown line on the weights a run would use, and whether a download button makes sense."""
    if not model:
        return "Pick a model.", False
    if file:
        return f"Using the uploaded weights file **{Path(file).name}**.", False
    if not style:
        styles = style_names(model)
        if styles:
            return f"Pick a style ({', '.join(styles)}) or upload a weights file.", False
        return (f"**{model}** has no pretrained styles: upload a weights file, e.g. the "
                f"`generator.safetensors` of a training run (Train tab)."), False
    spec = get_registry().style(model, style)
    status = cache_status(spec.key, spec.source)
    licence = f" License: {spec.license.rstrip('.')}." if spec.license else ""
    if status == "cached":
        return f"`{spec.key}` weights are cached.{licence}", False
    if status == "corrupt":
        return (f"The cached `{spec.key}` file {cached_path(spec.key, spec.source)} is corrupt: delete it and "
                f"download again, or install a good copy with `anime weights import {spec.key} FILE`."), True
    total = sum(f.size or 0 for f in spec.source.files)  # a style may be several files (a TF checkpoint)
    size = f" ({total / 1e6:.1f} MB)" if total else ""
    return (f"`{spec.key}` weights are not cached yet{size}: download them now, or they download on the "
            f"first run.{licence}"), True


def pull_weights(model: str, style: str) -> str:
    """Download and verify a style's weights (tqdm progress); an offline failure says how to import them."""
    if not model or not style:
        raise UsageError("pick a model and a style to download its weights")
    path = fetch_style(get_registry().style(model, style))
    return f"`{model}:{style}` weights downloaded and verified: {path}"


# -- pipelines ---------------------------------------------------------------------------------
_PIPES: OrderedDict[str, Pipeline] = OrderedDict()
_PIPES_LOCK = threading.Lock()


def pipeline(weights: Weights, options: Mapping[str, Any], device: str = "auto",
             precision: str | None = None) -> Pipeline:
    """``anime_core.load`` for these weights and options, reusing the last few pipelines built."""
    stamp = Path(weights.file).stat().st_mtime_ns if weights.file and Path(weights.file).is_file() else None
    # the registry and the cache root belong to the key: a style's weights are only valid where they were found
    where = (id(get_registry()), str(anime_home()))
    key = repr((weights, stamp, sorted(options.items()), device, precision, where))
    with _PIPES_LOCK:
        if key in _PIPES:
            _PIPES.move_to_end(key)
            return _PIPES[key]
        pipe = load(
            weights.model,
            style=None if weights.file else weights.style,
            weights=weights.file,
            device=device,
            precision=precision,
            **options,
        )
        _PIPES[key] = pipe
        while len(_PIPES) > CACHED_PIPELINES:
            _PIPES.popitem(last=False)
        return pipe


def face_options(faces: bool, background: str | None) -> dict[str, Any]:
    """The Faces toggle and Background choice as ``load`` keywords (portrait mode, ``anime run --faces``)."""
    if not faces:
        return {}
    return {"faces": True, "background": str(background or "same")}


def background_choices() -> list[str]:
    """What the Background field offers: same, keep, and every translate model's styles as MODEL:STYLE."""
    reg = get_registry()
    return ["same", "keep", *sorted(s.key for s in reg.styles.values() if reg.models[s.model].kind == "translate")]


def _count_faces(pipe: Pipeline) -> Callable[[], list[str]]:
    """Start counting the faces of this run (a cached pipeline counts anew); returns what gives the log line."""
    if not hasattr(pipe, "counts"):
        return lambda: []
    pipe.counts = type(pipe.counts)()
    return lambda: [pipe.counts.line(pipe.min_face, pipe.max_faces)]


def _whole(value: Any, flag: str) -> int:
    """A form's number as an int (a forged request may send anything: text, NaN, 1e300)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} must be a number, not {value!r}") from None
    if not math.isfinite(number) or int(number) != number:
        raise UsageError(f"{flag} must be a whole number, not {value}")
    return int(number)


def _bounded(value: Any, least: int, flag: str, most: int) -> int | None:
    """A Size or Tile field in px (0 or empty: not set), checked against its range before anything runs."""
    if value in (None, 0, ""):
        return None
    number = _whole(value, flag)
    if not least <= number <= most:
        raise UsageError(f"{flag} must be a whole number from {least} to {most} px (a larger square would pass "
                         f"--max-pixels), not {number}")
    return number


def _run(pipe: Pipeline, inputs: Sequence[str], dest: Path, size: int | None = None, tile: int | None = None,
         num: int = 16, seed: int = 0, max_pixels: int = budget.DEFAULT_MAX_PIXELS,
         **file_options: Any) -> tuple[list[Path], list[str]]:
    """One ``anime run`` through the runner, writing to ``dest``: (files, notes); a failed input raises."""
    read = functools.partial(read_image, max_pixels=max_pixels)
    request = RunRequest(inputs=tuple(inputs), num=num, seed=seed, size=size, read=read)
    options = FileOptions(output=dest, size=size, tile=tile, progress=True, max_pixels=max_pixels, **file_options)
    report = run_pipeline(pipe, request, options)
    if report.failed:
        raise UsageError(report.failed[0][1])
    if not report.written:
        raise UsageError(f"{pipe.spec.name} wrote nothing for these inputs")
    return list(dict.fromkeys(report.written)), [note for _, note in report.notes]


def _summary(weights: Weights, written: list[Path], notes: list[str]) -> str:
    return "\n".join([f"{weights.label}: wrote {written[0].name}", *(f"- {note}" for note in notes)])


def _name(weights: Weights) -> str:
    return weights.label.replace(":", "-").replace(" + ", "-").replace(".", "_")


def _shown(pipe: Pipeline, image: str, size: int | None, folder: Path) -> Path | None:
    """The input as the model sees it (after the resize policy), for the before/after slider."""
    if not isinstance(pipe, TranslatePipeline):
        return None
    path = folder / "input.png"
    io.write_atomic(pipe.prepare(io.decode(Path(image)), size), path)
    return path


def _sizes(size: Any, tile: Any, max_pixels: int) -> tuple[int | None, int | None]:
    """The Size and Tile fields as ``anime run --size/--tile``, refused outside their range."""
    most = max_side(max_pixels)
    return _bounded(size, MIN_SIZE, "size", most), _bounded(tile, MIN_TILE, "tile", most)


def translate(
    image: str | None,
    weights: Weights,
    values: Mapping[str, Any] | None = None,
    size: float | None = None,
    tile: float | None = None,
    device: str = "auto",
    precision: str | None = None,
    workspace: Workspace | None = None,
    max_pixels: int = budget.DEFAULT_MAX_PIXELS,
    faces: bool = False,
    background: str | None = None,
    controls: Mapping[str, Any] | None = None,
) -> Result:
    """Photo -> anime: one image through a translate model; ``values`` are the model's own form fields.

    ``faces``/``background``: portrait mode, as ``anime run --faces --background``; ``controls``: ``keep_colors`` /
    ``strength`` (:func:`anime_core.ui.controls.applied`).
    """
    if not image:
        raise UsageError("upload a photo first")
    reg = get_registry()
    spec = reg.model(weights.model)
    if spec.kind != "translate":
        raise UsageError(f"'{spec.name}' generates images from noise; use the Generate tab")
    size_px, tile_px = _sizes(size, tile, max_pixels)
    pipe = applied(pipeline(weights, {**convert(spec, values or {}), **face_options(faces, background)}, device,
                            precision), **(controls or {}))
    folder = (workspace or Workspace()).folder(_name(weights))
    counted = _count_faces(pipe)
    written, notes = _run(pipe, [image], folder / f"{Path(image).stem}-{_name(weights)}.png", size_px, tile_px,
                          max_pixels=max_pixels)
    return Result(written, _shown(pipe, image, size_px, folder), _summary(weights, written, [*notes, *counted()]))


def generate(
    weights: Weights,
    values: Mapping[str, Any] | None = None,
    num: float = 16,
    seed: float = 0,
    device: str = "auto",
    precision: str | None = None,
    workspace: Workspace | None = None,
) -> Result:
    """Noise -> a sheet of ``num`` images from ``seed`` (or the model's own mode, e.g. a latent walk)."""
    spec = get_registry().model(weights.model)
    if spec.kind != "generate":
        raise UsageError(f"'{spec.name}' translates photos; use the Photo tab")
    count = _whole(num, "count")
    if count < 1:
        raise UsageError(f"count must be a whole number from 1 to {MAX_COUNT}, not {count}")
    budget.check_count(count, MAX_COUNT, "count", advice="`anime run MODEL --num N` makes more")
    start = _whole(seed, "seed")
    if not SEED_RANGE[0] <= start <= SEED_RANGE[1]:
        raise UsageError(f"seed must be from {SEED_RANGE[0]} to {SEED_RANGE[1]}, not {start}")
    pipe = pipeline(weights, convert(spec, values or {}), device, precision)
    folder = (workspace or Workspace()).folder(_name(weights))
    written, notes = _run(pipe, [], folder / f"{_name(weights)}-seed{start}.png", num=count, seed=start)
    return Result(written, None, _summary(weights, written, notes))


def compare(
    image: str | None,
    choices: Sequence[Weights],
    size: float | None = None,
    device: str = "auto",
    precision: str | None = None,
    workspace: Workspace | None = None,
    max_pixels: int = budget.DEFAULT_MAX_PIXELS,
) -> tuple[list[tuple[Path, str]], list[str]]:
    """The same photo through several styles/models: ``[(output, label)]`` and one line per failure."""
    if not image:
        raise UsageError("upload a photo first")
    if not choices:
        raise UsageError("tick at least one style, or upload weights files for a model")
    _sizes(size, None, max_pixels)  # a bad size is one error, not one per style
    shown: list[tuple[Path, str]] = []
    failed: list[str] = []
    for weights in choices:
        try:
            result = translate(image, weights, {}, size, None, device, precision, workspace, max_pixels)
        except AnimeError as exc:  # one missing style must not hide the others
            failed.append(f"{weights.label}: {exc}")
            continue
        if not shown and result.shown is not None:
            shown.append((result.shown, "input"))
        shown.append((result.files[0], weights.label))
    return shown, failed


# -- video -------------------------------------------------------------------------------------
VIDEO_NOTE = 'Video needs the video support of `anime run` and PyAV: `pip install "anime-core[video]"`.'


def video_support() -> str | None:
    """``None`` when ``anime run`` can convert videos here, else what to install."""
    if importlib.util.find_spec("av") is None:
        return VIDEO_NOTE
    if importlib.util.find_spec("anime_core.inference.video") is None:
        return "Video conversion is coming with this anime-core version's `anime run MODEL clip.mp4`; not here yet."
    return None


def video(
    clip: str | None,
    weights: Weights,
    values: Mapping[str, Any] | None = None,
    size: float | None = None,
    tile: float | None = None,
    device: str = "auto",
    precision: str | None = None,
    workspace: Workspace | None = None,
    deflicker: bool = False,
    crf: float = 18,
    max_pixels: int = budget.DEFAULT_MAX_PIXELS,
    faces: bool = False,
    background: str | None = None,
    controls: Mapping[str, Any] | None = None,
) -> Result:
    """A video (or animated GIF/WebP) through a translate model, as ``anime run MODEL clip.mp4 [--deflicker]``."""
    missing = video_support()
    if missing:
        raise UsageError(missing)
    if not clip:
        raise UsageError("upload a video first")
    spec = get_registry().model(weights.model)
    if spec.kind != "translate":
        raise UsageError(f"'{spec.name}' generates images from noise; pick a translate model")
    size_px, tile_px = _sizes(size, tile, max_pixels)
    if crf is None or not 0 <= _whole(crf, "CRF") <= 63:
        raise UsageError(f"CRF must be a whole number from 0 (lossless) to 63, not {crf}")
    pipe = applied(pipeline(weights, {**convert(spec, values or {}), **face_options(faces, background)}, device,
                            precision), **(controls or {}))
    folder = (workspace or Workspace()).folder(_name(weights))
    counted = _count_faces(pipe)
    src = Path(clip)
    dest = folder / f"{src.stem}-{_name(weights)}{src.suffix.lower()}"
    written, notes = _run(pipe, [clip], dest, size_px, tile_px, deflicker=bool(deflicker),
                          encode=EncodeOptions(crf=int(crf)), max_pixels=max_pixels)
    return Result(written, None, _summary(weights, written, [*notes, *counted()]))
