"""``anime export MODEL ...``: the generator as an ONNX graph, verified against PyTorch before it is written.

One sub-command per registered model (like ``anime run``), so a model's own options that choose
the network (``--direction`` for cyclegan) apply. This module imports no torch: the callback does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from anime_core.choice import architecture_params
from anime_core.cli.common import ModelGroup, warn_plugin_errors
from anime_core.errors import UsageError
from anime_core.registry import get_registry
from anime_core.specs import ModelSpec

MAX_CALIBRATION = 16  # static quantization runs every calibration image through the fp32 graph


def _params(spec: ModelSpec) -> list[click.Parameter]:
    return [
        click.Option(["--style", "-s"], help="Pretrained style (see 'anime info MODEL')."),
        click.Option(["--weights", "-w"], type=click.Path(dir_okay=False, path_type=Path),
                     help="Weights file: native .safetensors or a foreign .pt/.pth."),
        click.Option(["--format", "fmt"], default="onnx", show_default=True, type=click.Choice(["onnx"])),
        click.Option(["-o", "--output"], type=click.Path(path_type=Path),
                     help="Output .onnx file (or a folder); default MODEL-STYLE.onnx here."),
        click.Option(["--opset"], type=click.IntRange(17), help="ONNX opset (default: the exporter's)."),
        click.Option(["--precision"], default="fp32", show_default=True, type=click.Choice(["fp32", "fp16", "int8"]),
                     help="fp16: half-precision weights and compute; int8: static int8 calibrated on --calibrate "
                     "photos, refused below 35 dB PSNR against fp32 on any of them. Inputs and outputs stay float32."),
        click.Option(["--calibrate"], multiple=True, type=click.Path(exists=True, path_type=Path),
                     help=f"int8: photos or folders of typical inputs (the first {MAX_CALIBRATION} images are used)."),
        click.Option(["--size"], type=click.IntRange(16), default=512, show_default=True,
                     help="int8: the long side calibration photos are resized to (the size you will run at)."),
        *spec.run_options,
    ]


def _destination(output: Path | None, spec: ModelSpec, label: str, precision: str) -> Path:
    stem = f"{spec.name}-{Path(label).stem.replace(':', '-')}" if label else spec.name
    name = f"{stem}{'' if precision == 'fp32' else '-' + precision}.onnx"
    if output is None:
        return Path(name)
    if output.is_dir() or not output.suffix:
        return output / name
    if output.suffix.lower() != ".onnx":
        raise UsageError(f"-o {output} should end in .onnx (or name a folder)")
    return output


def _calibration(paths: tuple[Path, ...], pipe: Any, size: int) -> list[Any]:
    """The calibration photos as the pipeline would run them: RGB, resized to ``size``, (3, H, W) uint8."""
    from PIL import Image, UnidentifiedImageError

    from anime_core.inference import io

    files = [f for p in paths for f in (sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])]
    images = []
    for f in files:
        if f.suffix.lower() not in io.IMAGE_EXTENSIONS:
            continue
        try:
            with Image.open(f) as im:
                images.append(io.to_tensor(pipe.prepare(io.to_rgb(im), size)))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UsageError(f"calibration photo {f} cannot be read ({exc}); remove it or pass other photos") from None
        if len(images) == MAX_CALIBRATION:
            break
    if paths and not images:
        raise UsageError(f"no images found in {', '.join(map(str, paths))} to calibrate int8 with")
    return images


def _make_command(spec: ModelSpec) -> click.Command:
    own = {p.name for p in spec.run_options}
    arch_params = architecture_params(spec)

    def callback(**kw: Any) -> None:
        from anime_core.api import is_onnx, pipeline_class, resolve, split_options, torch_pipeline
        from anime_core.inference.backends import onnx_export, onnx_runtime

        warn_plugin_errors()
        options = {k: kw.pop(k) for k in list(kw) if k in own}
        options.update({p.name: v for p in arch_params if p.name and (v := kw.pop(p.name, None)) is not None})
        if kw["weights"] is not None and is_onnx(kw["weights"]):
            raise UsageError(f"{kw['weights']} is already an ONNX graph; export from .safetensors or .pt weights")
        onnx_runtime.require("onnxruntime")  # verification needs it: fail before the weights download
        source = resolve(spec.name, kw["style"], kw["weights"])
        if source.onnx is not None:
            raise UsageError(f"style '{kw['style']}' is already an ONNX graph: {source.onnx}")
        dest = _destination(kw["output"], spec, source.label, kw["precision"])
        cls = pipeline_class(spec)
        chosen, pipe_options = split_options(spec, cls, get_registry(), options)
        pipe, generator_options = torch_pipeline(spec, cls, source, chosen, pipe_options, device="cpu")
        if kw["calibrate"] and kw["precision"] != "int8":
            raise UsageError("--calibrate is for --precision int8")
        calibration = _calibration(kw["calibrate"], pipe, kw["size"]) if kw["precision"] == "int8" else None
        result = onnx_export.export(pipe, dest, kw["opset"], kw["precision"], generator_options, source.label,
                             calibration=calibration)
        size = dest.stat().st_size / 2**20
        checks = ", ".join(map(str, result.checks))
        int8 = result.meta.get("int8_psnr_db")
        note = f"; int8 vs fp32 PSNR {int8} dB on the calibration photos" if int8 else ""
        click.echo(f"{spec.name}: wrote {dest} ({size:.1f} MiB, opset {result.opset}, {result.precision}, "
                   f"{result.seconds:.0f} s); ONNX Runtime vs PyTorch max |diff| {checks}{note}", err=True)

    return click.Command(
        spec.name,
        params=[*_params(spec), *arch_params],
        callback=callback,
        help=f"Export the {spec.name} generator to ONNX (dynamic batch and sizes; pre/post-processing in the "
        f"graph's metadata), verified against PyTorch at two input sizes before it is written.",
    )


export_group = ModelGroup(
    "export", _make_command, help="Export a model's generator: anime export animegan --style paprika -o paprika.onnx"
)
