"""``anime run MODEL ...``: one sub-command per registered model, with the model's own options.

This module imports no torch: ``anime run --help`` lists the models from their specs. The
callback loads the pipeline (compute) and hands it to the runner (:mod:`anime_core.runner`: files).
"""

from __future__ import annotations

import functools
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from anime_core import budget
from anime_core.choice import architecture_params
from anime_core.cli.common import ModelGroup, warn_plugin_errors
from anime_core.errors import UsageError
from anime_core.inference import backends
from anime_core.registry import get_registry
from anime_core.runner.limits import MAX_NUM, MIN_SIZE, MIN_TILE, check_samples
from anime_core.specs import ModelSpec
from anime_core.text import printable

#: the exit code of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
INTERRUPTED = 130


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
        click.Option(["--backend"], type=click.Choice(["auto", *backends.NAMES]), default="auto",
                     show_default=True,
                     help="auto: openvino on the CPU where it is installed (anime-core[openvino]), else torch; "
                          "onnxruntime (the default for .onnx weights; needs anime-core[onnx]) and openvino run the "
                          "generator as a verified ONNX export, made once and cached."),
        click.Option(
            ["--device"], default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"])
        ),
        click.Option(
            ["--precision"],
            default=None,
            type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
            help="[default: auto, or $ANIME_PRECISION] auto: bf16 where the device computes it natively "
                 "(AVX512-BF16/AMX CPUs, recent GPUs) if the "
                 "model's output stays within 1/255 (mean) of fp32 on a real photo (checked once per weights file, "
                 "cached), else fp32; fp32: the exact output. fp16/bf16 speed up CUDA GPUs (bf16 from Ampere on) "
                 "and Apple MPS; a CPU without native fp16/bf16 instructions would be ~60x slower, so fp32 runs "
                 "there, with a notice.",
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
                type=click.IntRange(MIN_SIZE),
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
            click.Option(
                ["--crop/--no-crop"],
                default=None,
                help="Centre-crop every image to a square, or never [default: the style's preset: the face styles "
                     "crop, see 'anime info MODEL']. The run says so in one line when it crops.",
            ),
            click.Option(["--side-by-side"], is_flag=True, help="Write input and output next to each other."),
            click.Option(
                ["--skip-existing"],
                is_flag=True,
                help="Skip inputs whose output file already exists (continues an interrupted run); without it, "
                     "existing outputs are replaced and the summary counts them.",
            ),
            click.Option(
                ["--max-pixels"],
                default=DEFAULT_MAX_PIXELS,
                show_default=True,
                type=click.IntRange(1),
                help="Refuse larger images (decompression-bomb guard; also raises Pillow's own limit).",
            ),
            *_video_options(),
            *_face_options(),
            *_control_options(spec),
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


def _control_options(spec: ModelSpec) -> list[click.Parameter]:
    """--keep-colors and --strength (anime_core.inference.controls), unless the model has its own (ae's --strength)."""
    from anime_core.inference.controls import owned  # no torch

    params = [
        click.Option(["--keep-colors"], is_flag=True, default=None,
                     help="Keep the photo's colours: the style's lightness (lines, shading) with the photo's "
                          "CIE a*b* chroma."),
        click.Option(["--strength"], type=click.FloatRange(0.0, 1.0), default=None,
                     help="Style strength: 0 returns the photo, 1 the full style [default: 1]; a blend in "
                          "between."),
    ]
    return [p for p in params if p.name not in owned(spec)]


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


def _face_options() -> list[click.Parameter]:
    """Portrait mode (see anime_core.faces.portrait); numpy and torch load only when --faces is used."""
    return [
        click.Option(["--faces"], is_flag=True,
                     help="Portrait mode: detect every face, align it to the style's face template, stylise it at the "
                          "model's face size and paste it back (needs anime-core[faces])."),
        click.Option(["--background"], metavar="STYLE|keep|same",
                     help="With --faces, the rest of the picture: same (default: this model and style), keep (the "
                          "photo), or a style such as hayao (MODEL:STYLE for another model's)."),
        click.Option(["--min-face"], type=click.IntRange(1), metavar="PX",
                     help="With --faces, leave faces smaller than PX (box side) to the background [default: 32]."),
        click.Option(["--max-faces"], type=click.IntRange(1), metavar="N",
                     help="With --faces, stylise at most the N largest faces of a picture [default: 32]."),
        click.Option(["--detector"], metavar="NAME",
                     help="With --faces, the registered face detector [default: retinaface]."),
    ]


def _face_keywords(kw: dict[str, Any]) -> dict[str, Any]:
    """``load`` keywords of portrait mode from the command line (popped from ``kw``)."""
    out = {"faces": kw.pop("faces", False)}
    for key in ("background", "min_face", "max_faces", "detector"):
        if (value := kw.pop(key, None)) is not None:
            out[key] = value
    return out


def _make_command(spec: ModelSpec) -> click.Command:
    own = {p.name for p in spec.run_options}
    arch_params = architecture_params(spec)

    def callback(**kw: Any) -> int:
        from tqdm.auto import tqdm

        from anime_core.api import load
        from anime_core.inference import video
        from anime_core.inference.io import DEFAULT_MAX_PIXELS
        from anime_core.inference.modes import RunRequest, read_image
        from anime_core.inference.pipeline import PrecisionFallback
        from anime_core.runner.options import FileOptions
        from anime_core.runner.report import RunInterrupted
        from anime_core.runner.sharding import end_processes, process_state
        from anime_core.runner.translate import run_pipeline

        state = process_state(kw["device"])  # accelerate launch: each process translates its share of the inputs
        main = state is None or state.is_main_process  # only the main process speaks
        if main:
            warn_plugin_errors()
        options = {k: kw.pop(k) for k in list(kw) if k in own}
        options.update({p.name: v for p in arch_params if p.name and (v := kw.pop(p.name, None)) is not None})
        if kw.get("crop") is not None:  # --crop/--no-crop; unset: the style's preset decides
            options["crop"] = kw["crop"]
        options.update({k: v for k in ("keep_colors", "strength") if (v := kw.pop(k, None)) is not None})
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
        faces = _face_keywords(kw)
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
                **faces,
                **options,
            )
        if spec.kind == "generate":
            check_samples(pipe, kw["num"])
        if pipe.precision_notice and main:
            click.echo(f"note: {pipe.precision_notice}", err=True)
        crop_notice = getattr(pipe, "crop_notice", None)  # translate pipelines
        if main and crop_notice is not None and kw.get("inputs") and (line := crop_notice(kw.get("size"))):
            click.echo(f"note: {line}", err=True)
        if pipe.backend_notice and main:
            click.echo(f"note: {pipe.backend_notice}", err=True)
        ran = pipe.precision  # settles --precision auto (a parity check the first time for these weights)
        if main and pipe.precision_choice:  # --precision auto (the default) chose: say what ran, once
            gen = pipe.generator
            engine = getattr(gen, "backend", "onnxruntime" if hasattr(gen, "session") else "torch")
            line = pipe.precision_choice
            click.echo(f"{spec.name}: {line.replace(f'precision {ran}', f'precision {ran} on {engine}', 1)}", err=True)
        max_pixels = kw.get("max_pixels") or DEFAULT_MAX_PIXELS
        request = RunRequest(
            inputs=tuple(kw.get("inputs", ())),
            num=kw.get("num", 16),
            seed=kw.get("seed", 0),
            size=kw.get("size"),
            batch_size=kw["batch_size"],
            read=functools.partial(read_image, max_pixels=max_pixels),
        )
        file_options = FileOptions(
            output=kw["output"],
            size=kw.get("size"),
            tile=kw.get("tile"),
            batch_size=kw["batch_size"],
            side_by_side=kw.get("side_by_side", False),
            skip_existing=kw.get("skip_existing", False),
            max_pixels=max_pixels,
            progress=not kw["quiet"] and main,
            deflicker=kw.get("deflicker", False),
            keep_partial=kw.get("keep_partial", False),
            encode=encode,
            announce=None if kw["quiet"] else lambda line: tqdm.write(printable(line), file=sys.stderr),
            processes=state,
        )
        try:
            report = run_pipeline(pipe, request, file_options)  # under accelerate launch: every process's, merged
        except RunInterrupted as stop:  # Ctrl-C: what was computed is written; say what is left and how to go on
            if main:
                _echo_report(stop.report)
                _echo_interrupted(stop, state is None)
            return INTERRUPTED
        end_processes(state)  # after the last collective: exiting with the group alive can abort (SIGABRT)
        if not main:
            return report.exit_code
        _echo_report(report)
        if hasattr(pipe, "counts"):  # --faces: how many faces were stylised and skipped
            click.echo(pipe.counts.line(pipe.min_face, pipe.max_faces), err=True)
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


def _echo_report(report: Any) -> None:
    for path, note in report.notes:  # file names and reasons naming them: escaped, one line each
        click.echo(printable(f"warning: {path}: {note}"), err=True)
    for path, reason in report.failed:
        click.echo(printable(f"failed: {path}: {reason}"), err=True)


def _echo_interrupted(stop: Any, counted: bool) -> None:
    """After Ctrl-C: the files written, those that remain, and the command that continues the run.

    ``counted``: one process ran every input, so its counts are the run's (under ``accelerate launch`` each
    process knows only its share: the command is still right).
    """
    report = stop.report
    if counted:
        replaced = f" ({len(set(report.replaced))} replaced)" if report.replaced else ""
        skipped = f", {len(set(report.skipped))} skipped" if report.skipped else ""
        failed = f", {len(report.failed)} failed" if report.failed else ""
        click.echo(printable(f"interrupted: {len(set(report.written))} files written{replaced}{skipped}{failed}, "
                             f"{len(stop.remaining)} remain"), err=True)
    else:
        click.echo("interrupted", err=True)
    click.echo(printable(f"to continue: {continue_command()}"), err=True)


def continue_command() -> str:
    """The command line of this ``anime run`` with ``--skip-existing``: it runs only the inputs not yet written."""
    ctx = click.get_current_context()
    argv = list((ctx.find_root().obj or {}).get("argv") or ctx.command_path.split()[1:])
    end = argv.index("--") if "--" in argv else len(argv)
    if "--skip-existing" not in argv[:end]:
        argv.insert(end, "--skip-existing")
    return shlex.join(["anime", *argv])


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
