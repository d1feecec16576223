"""The small public Python API (DESIGN.md "Public Python API").

import anime_core
anime_core.list_models()
g = anime_core.build("animegan", "generator", variant="v1")
pipe = anime_core.load("animegan", style="paprika")   # or weights="file.safetensors" / "file.onnx"
pipe(pil_image)                 # translate models
pipe.generate(n=16, seed=0)     # generate models
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anime_core.errors import UsageError
from anime_core.registry import Registry, get_registry

if TYPE_CHECKING:  # torch loads with the first build or load, not with ``import anime_core``
    from torch import nn

    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec
    from anime_core.weights.files import LoadedWeights


def list_models(registry: Registry | None = None) -> list[str]:
    """Names of all registered models, sorted."""
    return sorted((registry or get_registry()).models)


def build(model: str, part: str = "generator", **overrides: Any) -> nn.Module:
    """An ``nn.Module`` from the registry with the model's default options, ``overrides`` applied.

    The one public builder: ``anime_core.build("cyclegan", "discriminator", width=32)``.
    """
    return get_registry().build(model, part, **overrides)



BACKENDS = ("torch", "onnxruntime")
#: torch, not onnxruntime, although ONNX Runtime measured faster on the CPU (benchmarks/RESULTS.md): its first
#: use of a weights file costs a verified export (seconds to a minute, then cached), and torch runs on every device
DEFAULT_BACKEND = "torch"


@dataclass
class Source:
    """Where a pipeline's generator comes from: loaded torch weights, or an ONNX graph file."""

    loaded: LoadedWeights | None = None
    onnx: Path | None = None
    generator_options: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the style key or the file name, for messages and export metadata


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def resolve(model: str, style: str | None = None, weights: str | Path | None = None) -> Source:
    """The weights ``load`` would use for ``model``: a style (downloaded, verified) or a file.

    ``.onnx`` files, and styles whose source layout is ``onnx``, stay graphs for ONNX Runtime.
    """
    from anime_core.weights import fetch_style, load_weights

    reg = get_registry()
    if style and weights:
        raise UsageError("give either a style or a weights file, not both")
    if style:
        st = reg.style(model, style)
        path = fetch_style(st)
        source = Source(generator_options=dict(st.generator), preprocess=dict(st.preprocess), label=st.key)
        if st.source.layout == "onnx" or is_onnx(path):
            source.onnx = Path(path)
        else:
            source.loaded = load_weights(path, model, reg)
        return source
    if weights:
        if is_onnx(weights):
            return Source(onnx=Path(weights).expanduser(), label=Path(weights).name)
        loaded = load_weights(weights, model, reg)
        return Source(loaded=loaded, generator_options=dict(loaded.generator), label=Path(weights).name)
    styles = sorted(reg.styles_of(model))
    hint = f"--style ({', '.join(styles)}) or " if styles else ""
    raise UsageError(f"'{model}' needs pretrained weights: pass {hint}--weights FILE (e.g. from 'anime train {model}')")


def pipeline_class(spec: ModelSpec) -> type[Pipeline]:
    """The model's pipeline class: its own, else the core's for its kind."""
    from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline

    return spec.pipeline_class() or (TranslatePipeline if spec.kind == "translate" else GeneratePipeline)


def load(
    model: str,
    style: str | None = None,
    weights: str | Path | None = None,
    device: str | None = None,
    precision: str = "fp32",
    backend: str | None = None,
    **options: Any,
) -> Pipeline:
    """A ready pipeline for ``model`` with a pretrained ``style`` or a ``weights`` file.

    Styles download (verified) on first use; ``weights`` may be native safetensors, a foreign
    ``.pt``/``.pth`` whose layout a plugin converter recognises, or an ``.onnx`` graph (exported by
    ``anime export`` or a third party's). ``backend``: ``torch`` (default) or ``onnxruntime``, which
    runs the same pipeline on an ONNX export of the generator (made and verified once, then cached);
    ONNX graphs always run on onnxruntime. ``options`` go to the model's pipeline (e.g.
    ``strength=0.5`` for ``ae``, ``direction="anime2photo"`` for ``cyclegan``).
    """
    if backend not in (None, *BACKENDS):
        raise UsageError(f"unknown backend '{backend}'; use torch or onnxruntime")
    spec = get_registry().model(model)
    source = resolve(model, style, weights)
    cls = pipeline_class(spec)
    if source.onnx is not None:
        if backend == "torch":
            raise UsageError(f"{source.label} is an ONNX graph, which runs with --backend onnxruntime, not torch")
        from anime_core.inference.onnx import onnx_pipeline

        return onnx_pipeline(cls, spec, source.onnx, device, precision, source.preprocess, **options)
    pipe = cls.from_weights(spec, get_registry(), source.loaded, source.generator_options, device=device,
                            precision=precision, preprocess=source.preprocess, **options)
    if (backend or DEFAULT_BACKEND) == "onnxruntime":
        from anime_core.inference.onnx import to_onnxruntime

        return to_onnxruntime(pipe, cls, device, **options)
    return pipe
