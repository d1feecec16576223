"""The small public Python API (DESIGN.md "Public Python API").

import anime_core
anime_core.list_models()
g = anime_core.build("animegan", "generator", variant="v1")
pipe = anime_core.load("animegan", style="paprika")   # or weights="file.safetensors" / "file.onnx"
pipe(pil_image)                 # translate models; also a path, an HWC array, a CHW/NCHW tensor or a list of them
anime_core.load("animegan", style="face_paint_512_v2", faces=True, background="hayao")  # portrait mode
pipe.generate(n=16, seed=0)     # generate models
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anime_core.errors import AnimeError, UsageError, WeightsUnavailable, did_you_mean
from anime_core.inference import backends
from anime_core.inference.backends.base import ExportError
from anime_core.registry import Registry, get_registry
from anime_core.variants import Variants

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



BACKENDS = ("auto", *backends.NAMES)
#: auto: OpenVINO where it is installed (anime-core[openvino]), the device is the CPU, and OpenVINO runs a precision
#: below fp32 natively there (bf16 on AVX512-BF16/AMX) that the run may use (--precision auto or that one); else
#: torch. Measured on such a CPU, OpenVINO's bf16 ran AnimeGAN v2 1.8-2x faster than torch's bf16 autocast, while in
#: fp32 torch, ONNX Runtime and OpenVINO are on a par (benchmarks/RESULTS.md, "Precision auto and OpenVINO"): there
#: torch keeps the exact output, exact tiles and no export. OpenVINO's first use of a weights file costs a verified
#: export (cached, shared with onnxruntime's); a generator that does not export runs on torch. ONNX graphs run on
#: onnxruntime.
DEFAULT_BACKEND = "auto"


#: the environment variable that sets the default ``--precision`` (``auto`` when unset)
PRECISION_ENV = "ANIME_PRECISION"
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")


def default_precision() -> str:
    """``$ANIME_PRECISION`` (e.g. ``fp32``: exact outputs everywhere), else ``auto``; a bad value is a usage error."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if value not in PRECISION_CHOICES:
        raise UsageError(f"{PRECISION_ENV}={value} is not a precision; use one of {', '.join(PRECISION_CHOICES)}")
    return value


def pick_backend(backend: str | None, device: str | None, precision: str = "auto", graph: bool = False) -> str:
    """The backend ``auto`` (or ``None``) means for ``device`` and ``precision``; ``graph``: the weights are ONNX."""
    if backend not in (None, "auto"):
        return backend
    if graph:
        return "onnxruntime"
    from anime_core.inference.backends import openvino
    from anime_core.inference.pipeline import pick_device

    if precision == "fp32" or not openvino.available() or pick_device(device).type != "cpu":
        return "torch"
    native = openvino.native_precision()
    return "openvino" if native != "fp32" and precision in ("auto", native) else "torch"


@dataclass
class Source:
    """Where a pipeline's generator comes from: loaded torch weights, or an ONNX graph file."""

    loaded: LoadedWeights | None = None
    onnx: Path | None = None
    generator_options: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the style key or the file name, for messages and export metadata
    style: bool = False  # ``generator_options`` are the style's (else the weights file's own)


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
        source = Source(generator_options=dict(st.generator), preprocess=dict(st.preprocess), label=st.key, style=True)
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


def architecture_option(spec: ModelSpec, registry: Registry | None = None) -> Variants | None:
    """The model's choice of network (``name``: the generator option, ``choices``, ``default``), if it has one.

    The registered ``<generator>.<variant>`` builders of a model with ``variant_key``
    (:mod:`anime_core.variants`); no torch, so ``anime run MODEL --help`` can show it.
    """
    return (registry or get_registry()).variants(spec)


#: keywords the core's own translate pipeline reads (``Pipeline.options``) beside a model's run options
#: ``crop``: True/False centre-crops every image to a square or never does (None: the style's ``center_crop``
#: preset); ``no_crop=True`` is its older spelling of False
CORE_PIPELINE_OPTIONS = {"translate": ("crop", "no_crop", "keep_colors", "strength"), "generate": ()}
_PIPELINE_ARGS = {"self", "spec", "nets", "device", "precision", "preprocess", "args", "kwargs", "options"}


def pipeline_keywords(spec: ModelSpec, cls: type[Pipeline]) -> list[str]:
    """Keywords ``cls`` takes: the model's ``run_options``, its constructors' named parameters, the core's own."""
    names = [str(p.name) for p in spec.run_options if p.name]
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names += [n for n, p in inspect.signature(init).parameters.items()
                      if n not in _PIPELINE_ARGS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names += CORE_PIPELINE_OPTIONS.get(spec.kind, ())
    return list(dict.fromkeys(names))


def generator_keywords(spec: ModelSpec, registry: Registry) -> list[str] | None:
    """Keywords the model's generator takes (every variant's); ``None`` when it takes any (``**options``)."""
    variants = registry.variants(spec)
    if variants is not None:
        return variants.keywords(registry)
    params = inspect.signature(registry.generator(spec.generator).builder()).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def split_options(spec: ModelSpec, cls: type[Pipeline], registry: Registry,
                  options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``load``'s keywords as (generator options, pipeline options); any other keyword is a :class:`UsageError`.

    A keyword both take goes to the pipeline, which declared it for runs. The architecture
    option's value is checked against its choices here, so a typo is a usage error (exit 2), not a
    file that "does not fit" (exit 3).
    """
    taken = pipeline_keywords(spec, cls)
    gen_names = generator_keywords(spec, registry)
    generator: dict[str, Any] = {}
    pipeline: dict[str, Any] = {}
    for key, value in options.items():
        if key in taken:
            pipeline[key] = value
        elif gen_names is None or key in gen_names:
            generator[key] = value
        else:
            close = did_you_mean(key, [*gen_names, *taken])
            close = close if close.startswith("; did you mean") else ""
            raise UsageError(f"{spec.name}'s generator takes no '{key}'{close} (it takes {', '.join(gen_names)}; "
                             f"its pipeline takes {', '.join(taken) or 'none'})")
    variants = registry.variants(spec)
    if variants is None:
        return generator, pipeline
    generator = variants.canonical(generator)  # variant= under the model's key (cyclegan: arch)
    if variants.name in generator and generator[variants.name] not in variants.choices:
        raise UsageError(f"{spec.name} has no {variants.name} {generator[variants.name]!r}; use one of "
                         f"{', '.join(variants.choices)}")
    return generator, pipeline


def _same(a: Any, b: Any) -> bool:
    """Equal as the values a config holds (a tuple and a list of the same items are the same option)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def merge_chosen(spec: ModelSpec, source: Source, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """The source's generator options with the caller's ``chosen`` ones added; a contradiction is a UsageError.

    What a style, a native file's metadata or a converter's reading of a foreign file says about
    the architecture is a fact about its tensors: a keyword that says otherwise names both values.
    """
    recorded: dict[str, tuple[Any, str]] = {}
    if source.style:
        recorded.update({k: (v, f"style {source.label} is") for k, v in source.generator_options.items()})
    loaded = source.loaded
    if loaded is not None:
        name = loaded.path.name if loaded.path is not None else source.label
        what = (f"{name} records" if loaded.layout == "native"
                else f"{name}, read as a '{loaded.layout}' checkpoint, needs")
        recorded.update({k: (v, what) for k, v in loaded.generator.items()})
    for key, value in chosen.items():
        if key in recorded and not _same(recorded[key][0], value):
            held, what = recorded[key]
            raise UsageError(
                f"{key}={value!r} contradicts the weights: {what} {key}={held!r}; leave {key} out (the weights decide "
                f"it) or give weights of {key} {value!r}"
            )
    return {**source.generator_options, **chosen}


def _check_chosen(spec: ModelSpec, registry: Registry, options: Mapping[str, Any], chosen: Mapping[str, Any]) -> None:
    """A generator the caller's keywords cannot build is their usage error (exit 2), not a faulty file (exit 3).

    Built on the meta device (shapes only), before the weights' own check blames the file.
    """
    from anime_core.weights.files import _build_on_meta

    try:
        _build_on_meta(functools.partial(registry.build, spec, "generator"), options)
    except AnimeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
        raise UsageError(f"{given} does not build {spec.name}'s generator: {str(exc).rstrip('.')}") from None


def _fitting_choice(spec: ModelSpec, registry: Registry, source: Source, options: Mapping[str, Any],
                    chosen: Mapping[str, Any]) -> str | None:
    """For a file no converter read that does not fit: the architecture choice its tensors do fit, as advice.

    Only a plain state dict (no converter, no metadata) leaves the architecture open; the check
    builds on the meta device (no memory) for each other choice.
    """
    from anime_core.weights.files import check_options

    arch = registry.variants(spec)
    loaded = source.loaded
    if arch is None or arch.name in chosen or loaded is None or loaded.layout != "plain" or source.style:
        return None
    state = loaded.parts.get("generator") or {}
    for choice in arch.choices:
        if choice == options.get(arch.name, arch.default):
            continue
        try:
            check_options(functools.partial(registry.build, spec, "generator"), {**options, arch.name: choice},
                          state, "the file")
        except AnimeError:
            continue
        return f"{arch.name}={choice}: pass {arch.name}={choice!r} (anime run: --variant {choice})"
    return None


def pipeline_class(spec: ModelSpec) -> type[Pipeline]:
    """The model's pipeline class: its own, else the core's for its kind."""
    from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline

    return spec.pipeline_class() or (TranslatePipeline if spec.kind == "translate" else GeneratePipeline)


def torch_pipeline(spec: ModelSpec, cls: type[Pipeline], source: Source, chosen: Mapping[str, Any],
                   pipe_options: Mapping[str, Any], device: str | None = None,
                   precision: str = "fp32") -> tuple[Pipeline, dict[str, Any]]:
    """``cls`` around the torch generator of ``source`` with the caller's ``chosen`` generator keywords.

    Returns the pipeline and the generator options it was built with (``anime export`` records them).
    """
    reg = get_registry()
    gen_options = merge_chosen(spec, source, chosen)
    if chosen:
        _check_chosen(spec, reg, gen_options, chosen)
    try:
        pipe = cls.from_weights(spec, reg, source.loaded, gen_options, device=device, precision=precision,
                                preprocess=source.preprocess, **pipe_options)
    except WeightsUnavailable as exc:
        fits = _fitting_choice(spec, reg, source, gen_options, chosen)
        if fits is None:
            raise
        raise WeightsUnavailable(f"{str(exc).rstrip('.')}; its tensors fit {fits}") from exc
    return pipe, gen_options


def load(
    model: str,
    style: str | None = None,
    weights: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    backend: str | None = None,
    faces: bool = False,
    background: str | None = None,
    **options: Any,
) -> Pipeline:
    """A ready pipeline for ``model`` with a pretrained ``style`` or a ``weights`` file.

    ``faces=True`` (translate models): portrait mode (:mod:`anime_core.faces.portrait`): every
    face is detected, aligned to the style's face template, stylised at its face size and pasted
    back; ``background`` is ``"same"`` (default: the model on the whole picture), ``"keep"`` (the
    photo) or a style (``"hayao"``, ``"MODEL:STYLE"``). ``min_face`` (px), ``max_faces`` and
    ``detector`` (a registered detector's name) tune it.

    Styles download (verified) on first use; ``weights`` may be native safetensors, a foreign
    ``.pt``/``.pth`` whose layout a plugin converter recognises, or an ``.onnx`` graph (exported by
    ``anime export`` or a third party's). ``backend``: ``auto`` (default: ``openvino`` on the CPU
    where it is installed, else ``torch``), ``torch``, ``onnxruntime`` or ``openvino``, which run the
    same pipeline on an ONNX export of the generator (made and verified once, then cached); ONNX
    graphs run on onnxruntime (or openvino when asked for).

    ``precision``: ``None`` is ``$ANIME_PRECISION``, else ``auto`` (:func:`default_precision`).
    ``auto`` runs the fastest precision the device computes natively (bf16 on CPUs with
    AVX512-BF16/AMX and on GPUs that have it, else fp32) if its output is within a mean of 1/255
    and a 99.9th percentile of 6/255 of fp32 on a real photo, checked once per weights file and
    cached (:mod:`anime_core.inference.precision`); ``fp32`` is always today's exact output.

    ``options`` are keywords of the model's pipeline or of its generator, never anything else:

    - ``crop`` (translate models): ``False`` keeps the whole picture where a face style's preset would
      centre-crop it to a square (``anime run --no-crop``), ``True`` crops for any style;
    - pipeline keywords (``anime run MODEL``'s own options): e.g. ``strength=0.5`` for ``ae``,
      ``direction="anime2photo"`` for ``cyclegan``, ``class_name="green"`` for ``dcgan``;
    - the controls of every translate model (:mod:`anime_core.inference.controls`): ``keep_colors=True``
      (the style's lightness, the photo's colours) and ``strength=0..1`` (0: the photo, 1: the full
      style); ``pipe.with_controls(strength=0.5)`` changes them without reloading. A model with an
      option of the same name keeps its own meaning (``ae``'s ``strength`` blends chroma only);
    - generator keywords (the builders', as in ``anime_core.build``): the architecture of a file
      whose tensors do not decide it, e.g. ``variant="v2"`` for ``animegan`` or ``ae``,
      ``variant="resnet", n_blocks=6`` for ``cyclegan`` (its own key ``arch`` works too),
      ``resize="tf1_legacy"`` for animegan v1. ``variant`` names one of the model's registered
      ``<model>.<variant>`` builders (:mod:`anime_core.variants`).
      They are merged with the options the weights record (a native file's metadata, a style, or
      what a converter read from a foreign file); a keyword that contradicts those is a
      :class:`~anime_core.errors.UsageError` naming both values, and ONNX graphs take none.

    Any other keyword is a :class:`~anime_core.errors.UsageError` listing what the model takes.
    """
    precision = precision or default_precision()
    if backend not in (None, *BACKENDS):
        raise UsageError(f"unknown backend '{backend}'; use {', '.join(BACKENDS)}")
    face_options = {k: options.pop(k) for k in FACE_OPTIONS if k in options}
    if faces:
        return _portrait(model, style, weights, device, precision, backend, background, face_options, options)
    if background is not None or face_options:
        raise UsageError(f"{', '.join(['background', *face_options])} only apply with faces=True (anime run: --faces)")
    reg = get_registry()
    spec = reg.model(model)
    cls = pipeline_class(spec)
    chosen, pipe_options = split_options(spec, cls, reg, options)
    source = resolve(model, style, weights)
    # ONNX Runtime runs graphs in the precision they were exported with: auto is fp32 there
    fixed = "fp32" if precision == "auto" else precision
    if source.onnx is not None:
        if backend == "torch":
            raise UsageError(f"{source.label} is an ONNX graph, which runs with --backend onnxruntime, not torch")
        if chosen:
            raise UsageError(f"{source.label} is an ONNX graph, whose network is fixed; leave out "
                             f"{', '.join(sorted(chosen))}")
        if backend == "openvino":
            return backends.get("openvino").open(cls, spec, source.onnx, device, precision, source.preprocess,
                                                 **pipe_options)
        return backends.get("onnxruntime").open(cls, spec, source.onnx, device, fixed, source.preprocess,
                                                **pipe_options)
    which = pick_backend(backend, device, precision)
    pipe, _ = torch_pipeline(spec, cls, source, chosen, pipe_options, device,
                             precision if which == "torch" else "fp32" if which == "openvino" else fixed)
    if which == "openvino":
        try:
            graph = backends.get("openvino").from_torch(pipe, cls, device, precision=precision, **pipe_options)
        except ExportError as exc:
            if backend == "openvino":
                raise
            pipe, _ = torch_pipeline(spec, cls, source, chosen, pipe_options, device, precision)
            pipe.backend_notice = f"running on torch: the generator does not export for OpenVINO ({exc})"
            return pipe
        return graph
    return backends.get(which).from_torch(pipe, cls, device, **pipe_options)


#: ``load`` keywords of portrait mode besides ``faces`` and ``background``
FACE_OPTIONS = ("min_face", "max_faces", "detector")


def _portrait(model: str, style: str | None, weights: str | Path | None, device: str | None, precision: str,
              backend: str | None, background: str | None, face_options: dict[str, Any],
              options: dict[str, Any]) -> Pipeline:
    """``load(..., faces=True)``: the face pipeline, its background's, and the detector, as a PortraitPipeline."""
    from anime_core.faces.portrait import parse_background, portrait
    from anime_core.inference.controls import owned

    reg = get_registry()
    if reg.model(model).kind != "translate":
        raise UsageError(f"faces=True (--faces) stylises faces in photos; '{model}' generates images from noise")
    core = {"keep_colors", "strength"} - owned(reg.model(model))  # the core's controls act on the composite
    controls = {k: options.pop(k) for k in sorted(core) if k in options}
    face = load(model, style, weights, device, precision, backend, **options)
    template = reg.style(model, style).face if style else None
    name = parse_background(background)
    if name == "keep":
        back = None
    elif name == "same" or (name == style and ":" not in name):
        back = face
    else:
        other, _, bg_style = name.rpartition(":")
        other = other or model
        if reg.model(other).kind != "translate":
            raise UsageError(f"--background {name}: '{other}' generates images from noise; give a style of a "
                             f"translate model, same or keep")
        reg.style(other, bg_style)  # an unknown style is a usage error naming the styles there are
        back = load(other, bg_style, device=device, precision=precision, backend=backend,
                    **(options if other == model else {}))
    pipe = portrait(face, back, template=template, background_name=name, face_preset=template is not None,
                    **face_options)
    return pipe.with_controls(**controls) if controls else pipe
