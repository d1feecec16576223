"""``anime run MODEL ...``: one sub-command per registered model, with the model's own options.

This module imports no torch: ``anime run --help`` lists the models from their specs. The
callback loads the pipeline (compute) and hands it to :mod:`anime_core.cli.files` (files).
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from anime_core import budget
from anime_core.cli.common import ModelGroup, architecture_params, warn_plugin_errors
from anime_core.errors import UsageError
from anime_core.registry import get_registry
from anime_core.specs import ModelSpec
from anime_core.text import printable

MIN_TILE = 16  # px; --tile 0 turns tiling off
#: the most samples one ``anime run --num`` draws. They are held together and laid out as one sheet: 10,000
#: samples of 64 px make a 6,602 px square sheet (44 MP); more belong in several runs with other seeds
MAX_NUM = 10_000
#: the most samples ``anime eval --num`` draws (held together, written one file each): FID's usual 50,000, doubled
MAX_EVAL_NUM = 100_000


def _common(spec: ModelSpec) -> list[click.Parameter]:
    from anime_core.inference.io import DEFAULT_MAX_PIXELS  # numpy and Pillow: not for 'anime --help'
    from anime_core.inference.modes import AUTO_TILE_PIXELS, DEFAULT_TILE

    styles = sorted(get_registry().styles_of(spec.name))
    params: list[click.Parameter] = [
        click.Option(
            ["--style", "-s"],
            hidden=not styles,  # a model with no styles installed does not offer one
            help=f"Pretrained style: {', '.join(styles)} (see 'anime info {spec.name}').",
        ),
        click.Option(
            ["--weights", "-w"],
            type=click.Path(dir_okay=False, path_type=Path),
            help="Weights file: native .safetensors (what 'anime train' exports), a foreign .pt/.pth, a TensorFlow 1 "
                 "checkpoint (NAME.ckpt.index with its .data beside it), or an .onnx graph (needs anime-core[onnx]); "
                 f"'anime info {spec.name}' lists the foreign layouts it recognises.",
        ),
        click.Option(["--backend"], type=click.Choice(["torch", "onnxruntime"]),
                     help="torch (default), or onnxruntime: the generator as a verified ONNX export (default "
                          "for .onnx weights; needs anime-core[onnx])."),
        click.Option(
            ["--device"], default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"])
        ),
        click.Option(
            ["--precision"],
            default="fp32",
            show_default=True,
            type=click.Choice(["fp32", "fp16", "bf16"]),
            help="fp16/bf16 speed up CUDA GPUs (bf16 from Ampere on) and Apple MPS; a CPU without native fp16/bf16 "
                 "instructions (AVX512-FP16/BF16, AMX) would be ~60x slower, so fp32 runs there, with a notice.",
        ),
        click.Option(["--batch-size"], default=1, show_default=True, type=click.IntRange(1)),
        click.Option(
            ["-o", "--output"],
            type=click.Path(path_type=Path),
            help="Output folder [default: anime_out/], or one file: .png/.jpg/.gif, or .mp4/.mkv/... for a video."
            if spec.kind == "translate"
            else f"Output image (e.g. grid.png) or folder [default: {spec.name}-seedSEED.png in the current folder].",
        ),
        click.Option(["--quiet", "-q"], is_flag=True, help="No progress bar."),
    ]
    if spec.kind == "translate":
        params = [
            click.Argument(["inputs"], nargs=-1, required=False),
            *params,
            click.Option(
                ["--size"],
                type=click.IntRange(8),
                help="Resize so the long side is N px [default: original, or the style's preset]. On a CPU a photo of "
                     "several megapixels at full size can take minutes; the run prints an estimate.",
            ),
            click.Option(
                ["--tile"],
                type=click.IntRange(0),
                callback=_tile_side,
                help="Process in N px tiles: less memory, output equal to the untiled one. Images "
                     f"over {AUTO_TILE_PIXELS / 1e6:.1f} MP are tiled at {DEFAULT_TILE} px unless --tile 0.",
            ),
            click.Option(["--side-by-side"], is_flag=True, help="Write input and output next to each other."),
            click.Option(
                ["--max-pixels"],
                default=DEFAULT_MAX_PIXELS,
                show_default=True,
                type=click.IntRange(1),
                help="Refuse larger images (decompression-bomb guard; also raises Pillow's own limit).",
            ),
            *_video_options(),
        ]
    else:
        params += [
            click.Option(
                ["--num", "-n"], default=16, show_default=True, type=click.IntRange(1), help="Images to generate."
            ),
            click.Option(
                ["--seed"], default=0, show_default=True, type=int, help="Random seed: same seed, same images."
            ),
        ]
    return params


def _tile_side(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and 0 < value < MIN_TILE:
        raise click.BadParameter(f"{value} px is too small for a tile; use at least {MIN_TILE}, or 0 for no tiling")
    return value


def _video_options() -> list[click.Parameter]:
    """Options for videos and animated images (see anime_core.inference.video)."""
    return [
        click.Option(
            ["--deflicker"],
            is_flag=True,
            help="Videos/animations: blend each frame with the previous output where the input is still.",
        ),
        click.Option(
            ["--keep-partial"], is_flag=True, help="A damaged video keeps the frames decoded before the damage."
        ),
        click.Option(
            ["--codec"],
            default="auto",
            show_default=True,
            help="Video encoder (auto: libx264 where the container takes H.264, else its default).",
        ),
        click.Option(["--crf"], default=18, show_default=True, type=click.IntRange(0, 63), help="Video quality."),
        click.Option(["--bitrate"], help="Video bitrate instead of --crf, e.g. 8M or 2500k."),
        click.Option(["--pix-fmt"], default="yuv420p", show_default=True, help="Video pixel format."),
    ]


def _make_command(spec: ModelSpec) -> click.Command:
    own = {p.name for p in spec.run_options}
    arch_params = architecture_params(spec)

    def callback(**kw: Any) -> int:
        from tqdm.auto import tqdm

        from anime_core.api import load
        from anime_core.cli import files
        from anime_core.inference import video
        from anime_core.inference.io import DEFAULT_MAX_PIXELS
        from anime_core.inference.modes import RunRequest, read_image
        from anime_core.inference.pipeline import PrecisionFallback

        state = files.process_state(kw["device"])  # accelerate launch: each process translates its share of the inputs
        main = state is None or state.is_main_process  # only the main process speaks
        if main:
            warn_plugin_errors()
        options = {k: kw.pop(k) for k in list(kw) if k in own}
        options.update({p.name: v for p in arch_params if p.name and (v := kw.pop(p.name, None)) is not None})
        encode = video.EncodeOptions(  # checked before the model loads: a typo fails at once
            codec=kw.get("codec", "auto"),
            crf=kw.get("crf", video.DEFAULT_CRF),
            bitrate=video.parse_bitrate(kw.get("bitrate")),
            pix_fmt=kw.get("pix_fmt", video.DEFAULT_PIX_FMT),
        )
        video.check_options(encode)
        if spec.kind == "generate":  # the count before the model loads; what the samples need after
            budget.check_count(kw["num"], MAX_NUM, "--num", advice="draw more in runs with other seeds")
        if kw["weights"] is not None:
            check_weights_path(kw["weights"])
        device = kw["device"]
        if state is not None and state.device.type != "cpu" and device in ("auto", state.device.type):
            device = str(state.device)  # one accelerator per process (cuda:LOCAL_RANK), not all on the first
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PrecisionFallback)  # said once below, as a note
            pipe = load(
                spec.name,
                style=kw["style"],
                weights=kw["weights"],
                device=device,
                precision=kw["precision"],
                backend=kw["backend"],
                **options,
            )
        if spec.kind == "generate":
            check_samples(pipe, kw["num"])
        if pipe.precision_notice and main:
            click.echo(f"note: {pipe.precision_notice}", err=True)
        max_pixels = kw.get("max_pixels") or DEFAULT_MAX_PIXELS
        request = RunRequest(
            inputs=tuple(kw.get("inputs", ())),
            num=kw.get("num", 16),
            seed=kw.get("seed", 0),
            size=kw.get("size"),
            batch_size=kw["batch_size"],
            read=functools.partial(read_image, max_pixels=max_pixels),
        )
        file_options = files.FileOptions(
            output=kw["output"],
            size=kw.get("size"),
            tile=kw.get("tile"),
            batch_size=kw["batch_size"],
            side_by_side=kw.get("side_by_side", False),
            max_pixels=max_pixels,
            progress=not kw["quiet"] and main,
            deflicker=kw.get("deflicker", False),
            keep_partial=kw.get("keep_partial", False),
            encode=encode,
            announce=None if kw["quiet"] else lambda line: tqdm.write(printable(line), file=sys.stderr),
            processes=state,
        )
        report = files.run(pipe, request, file_options)  # under accelerate launch: every process's, merged
        files.end_processes(state)  # after the last collective: exiting with the group alive can abort (SIGABRT)
        if not main:
            return report.exit_code
        for path, note in report.notes:  # file names and reasons naming them: escaped, one line each
            click.echo(printable(f"warning: {path}: {note}"), err=True)
        for path, reason in report.failed:
            click.echo(printable(f"failed: {path}: {reason}"), err=True)
        where = f" to {report.written[0]}" if len(report.written) == 1 else ""
        click.echo(printable(f"{spec.name}: {report.summary()}{where}"), err=True)
        return report.exit_code

    what = "Translate INPUTS (files, folders, globs)" if spec.kind == "translate" else "Generate a grid of samples"
    return click.Command(
        spec.name,
        params=[*_common(spec), *arch_params, *spec.run_options],
        callback=callback,
        help=f"{what} with {spec.name}. {spec.description}".strip(),
        short_help=spec.description or what,  # the listing shows what differs between models, uncut
    )


def check_samples(pipe: Any, num: int, sheet: bool = True) -> None:
    """Refuse (``UsageError``) a ``--num`` above the limit, or whose samples would not fit memory or one sheet.

    The samples are held together as float32 (with ``sheet``, also laid out as one image of at most
    ``DEFAULT_MAX_PIXELS``, as a float and an 8-bit copy); their size is measured on one sample.
    """
    budget.check_count(num, MAX_NUM if sheet else MAX_EVAL_NUM, "--num", advice="draw more in runs with other seeds")
    _, c, h, w = pipe.decode_latents(pipe.latents(1, 0)).shape
    per_sample = c * h * w * 4 + pipe.latent_dim * 4 + ((h + 2) * (w + 2) * c * 5 if sheet else 0)
    budget.check_bytes(num * per_sample, f"--num {num:,} samples of {w}x{h}", advice="lower --num")
    if not sheet:
        return
    cols = max(1, math.ceil(math.sqrt(num)))
    width, height = cols * (w + 2) + 2, math.ceil(num / cols) * (h + 2) + 2
    if width * height > budget.DEFAULT_MAX_PIXELS:
        raise UsageError(
            f"--num {num:,} samples of {w}x{h} make a {width}x{height} sheet ({budget.fmt_mp(width * height)}), above "
            f"the {budget.DEFAULT_MAX_PIXELS / 1e6:g} MP limit of one image; lower --num or draw more in other runs"
        )


def check_weights_path(path: Path) -> None:
    """A ``--weights`` file that does not exist is a usage error (exit 2), not unavailable weights (exit 3).

    A TensorFlow 1 checkpoint may be named by its prefix ``NAME.ckpt`` (no such file; ``.index`` beside it).
    """
    path = path.expanduser()
    if path.exists() or path.with_name(path.name + ".index").exists():
        return
    raise UsageError(f"--weights {path} does not exist; give the path of a weights file")


run_group = ModelGroup(
    "run", _make_command, help="Run a model: anime run animegan --style paprika photo.jpg -o out/"
)
