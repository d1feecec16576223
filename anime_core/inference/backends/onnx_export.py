"""ONNX export of a pipeline's generator, verified against PyTorch, with the metadata to run it.

The graph holds the generator alone, in the value domain its pipeline feeds it (RGB in [-1, 1]
for most models, normalised L* for ``ae``), with dynamic batch, height and width; generate models
take noise ``(N, latent_dim)`` (and class labels ``(N,)`` when conditional) and return images.
The pipeline's pre/post-processing stays outside the graph and is written into the graph's
``metadata_props`` by :func:`stamp` (layout, value ranges, stride, out_scale, model, variant, the
resize defaults of the style). Before anything is written, ONNX Runtime runs the graph at two
input sizes and its output is compared with PyTorch's: above :data:`FP32_TOLERANCE` (max abs
difference) in fp32 the export fails. ``--precision int8`` quantizes the verified fp32 graph
(:mod:`.onnx_quant`). The file is written atomically.

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` based, the default since
torch 2.9). On torch 2.14 both it and the legacy TorchScript tracer (``dynamo=False``) give graphs
that match PyTorch at every size for all shipped generators once self-attention runs unchunked;
the dynamo exporter was kept because a shape it cannot keep symbolic is an error at export time,
while the tracer silently freezes trace-time values into the graph (with chunked attention it
froze the chunk sizes into a ``Split`` node that fails at any other size), and the legacy
exporter is deprecated. Its cost is export time (seconds instead of a fraction of one).

onnx and onnxscript (the ``anime-core[onnx]`` extra) are imported through
:func:`~.onnx_runtime.require` when an export starts.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io as _io
import json
import math
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anime_core.errors import UsageError
from anime_core.fsutil import write_bytes_atomic
from anime_core.inference.backends.base import ExportError
from anime_core.inference.backends.onnx_quant import quantize_int8
from anime_core.inference.backends.onnx_runtime import (
    ATTRIBUTES,
    FORMAT_VERSION,
    ONNX_FORMAT,
    first_line,
    require,
    session_options,
)
from anime_core.inference.casting import fp32_weights
from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline
from anime_core.layers import SelfAttention
from anime_core.registry import _core_version

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline

__all__ = ["ExportError", "ExportResult", "build_verified", "export", "quantize_int8", "stamp", "verify"]

FP32_TOLERANCE = 1e-3  # max |ORT - PyTorch| on the raw generator output, fp32 graphs
FP16_TOLERANCE = 5e-2  # fp16 graphs: about 6/255 of the [-1, 1] range; the measured figure is printed
PRODUCER = "anime-core"


@dataclass
class Check:
    """One parity check: the input shape and the max/mean |ONNX Runtime - PyTorch| of the raw output."""

    shape: tuple[int, ...]
    max_diff: float
    mean_diff: float

    def __str__(self) -> str:
        return f"{self.max_diff:.2e} at {'x'.join(map(str, self.shape))}"


@dataclass
class ExportResult:
    path: Path
    precision: str
    opset: int
    checks: list[Check]
    seconds: float
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def max_diff(self) -> float:
        return max(c.max_diff for c in self.checks)


def _attention_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # SelfAttention.forward (anime_core.layers) without its query chunks: the chunk count depends on
    # H*W, which cannot stay symbolic in a graph with dynamic sizes. Same maths (SAGAN, scale 1).
    n, c, h, w = x.shape
    q, k, v = (proj(x).flatten(2).transpose(1, 2).unsqueeze(1) for proj in (self.query, self.key, self.value))
    o = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    return x + self.gamma * o.squeeze(1).transpose(1, 2).reshape(n, c, h, w)


@contextlib.contextmanager
def _attention_sides(net: nn.Module) -> Iterator[list[int]]:
    """The feature-map heights self-attention sees in ``net``'s first forward (to bound the graph's memory)."""
    modules = [m for m in net.modules() if isinstance(m, SelfAttention)]
    seen: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[-2]))) for m in modules]
    first: list[int] = []
    try:
        yield first
    finally:
        for hook in hooks:
            hook.remove()
        first.extend(seen[: len(modules)])


def _exportable(generator: nn.Module, precision: str) -> nn.Module:
    """A CPU float copy of ``generator`` with whole (unchunked) attention; fp16 inside, fp32 at the edges."""
    net = copy.deepcopy(generator).to("cpu").float().eval().requires_grad_(False)
    for module in net.modules():
        if isinstance(module, SelfAttention):
            module.forward = types.MethodType(_attention_forward, module)
    return _Half(net) if precision == "fp16" else net


class _Half(nn.Module):
    """fp16 weights and compute with fp32 inputs and outputs, so a caller never sees the difference."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return (self.net(x.half()) if label is None else self.net(x.half(), label)).float()


def _side(pipe: Pipeline) -> tuple[int, int]:
    """A base side and a step, both multiples of the stride, at least the generator's smallest input."""
    stride = int(getattr(pipe, "stride", 1) or 1)
    low = max(64, int(getattr(pipe.generator, "min_side", 0) or 0))
    step = stride * max(1, math.ceil(16 / stride))
    return math.ceil(low / stride) * stride, step


def _inputs(pipe: Pipeline) -> tuple[tuple[torch.Tensor, ...], list[tuple[torch.Tensor, ...]], list[str]]:
    """(export example, two verification inputs, input names); images come through ``pipe.preprocess``."""
    gen = torch.Generator().manual_seed(0)
    if pipe.kind == "generate":
        dim = int(getattr(pipe, "latent_dim", 100))
        classes = int(getattr(pipe.generator, "num_classes", 0) or 0)

        def noise(n: int) -> tuple[torch.Tensor, ...]:
            z = torch.randn(n, dim, generator=gen)
            return (z, torch.arange(n) % classes) if classes else (z,)

        return noise(2), [noise(1), noise(5)], ["z", "label"][: 2 if classes else 1]
    base, step = _side(pipe)

    def image(n: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
        return (pipe.preprocess(torch.rand(n, 3, h, w, generator=gen)).float(),)

    example = image(2, base, base + step)
    return example, [image(1, base, base + step), image(2, base + 2 * step, base)], ["input"]


def _dynamic_shapes(pipe: Pipeline, names: list[str]) -> tuple[dict[int, str], ...]:
    if pipe.kind == "generate":
        return tuple({0: "batch"} for _ in names)
    return ({0: "batch", 2: "height", 3: "width"},)


def _to_proto(net: nn.Module, example: tuple[torch.Tensor, ...], names: list[str],
              dynamic: tuple[dict[int, str], ...], opset: int | None,
              translations: dict[Any, Any] | None = None) -> Any:
    """``torch.onnx.export(dynamo=True)`` to an in-memory ModelProto; its progress chatter is silenced.

    ``translations``: the exporter's ``custom_translation_table`` (custom ops -> ONNX functions).
    """
    for name in ("onnx", "onnxscript"):
        require(name)
    chatter = _io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, example, dynamo=True, input_names=names, output_names=["output"],
                dynamic_shapes=dynamic, opset_version=opset, optimize=True, verbose=False,
                custom_translation_table=translations,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export could not export this generator ({type(exc).__name__}: "
                          f"{first_line(exc)}); nothing was written") from None
    return program.model_proto


def _ort_outputs(data: bytes, inputs: list[tuple[torch.Tensor, ...]], names: list[str]) -> list[Any]:
    ort = require()
    session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    outs = []
    for args in inputs:
        feed = {name: np.ascontiguousarray(t.numpy()) for name, t in zip(names, args)}
        outs.append(session.run(None, feed)[0])
    return outs


@torch.inference_mode()
def verify(data: bytes, generator: nn.Module, inputs: list[tuple[torch.Tensor, ...]], names: list[str],
           device: torch.device) -> list[Check]:
    """Run the serialized graph on ONNX Runtime and the torch ``generator`` on ``inputs``; one Check each."""
    checks = []
    for args, got in zip(inputs, _ort_outputs(data, inputs, names)):
        want = generator(*(t.to(device) for t in args)).float().cpu()
        got_t = torch.from_numpy(got).float()
        if got_t.shape != want.shape:
            raise ExportError(f"the ONNX graph returns shape {tuple(got_t.shape)} for input "
                              f"{tuple(args[0].shape)}, PyTorch {tuple(want.shape)}; nothing was written")
        diff = (got_t - want).abs()
        finite = torch.isfinite(diff)
        max_diff = float(diff.max()) if bool(finite.all()) else math.inf
        checks.append(Check(tuple(args[0].shape), max_diff, float(diff[finite].mean()) if finite.any() else math.inf))
    return checks


def metadata(pipe: Pipeline, precision: str, opset: int, checks: list[Check],
             generator_options: dict[str, Any] | None = None, source: str = "") -> dict[str, str]:
    """What a user of the graph needs to feed it and read it, as ``metadata_props`` strings."""
    gen = pipe.generator
    cls = type(pipe)
    meta = {
        "format": ONNX_FORMAT,
        "format_version": FORMAT_VERSION,
        "model": pipe.spec.name,
        "kind": pipe.kind,
        "part": cls.weights_part(pipe.options),
        "variant": json.dumps(generator_options or {}, sort_keys=True),
        "generator_class": f"{type(gen).__module__}.{type(gen).__qualname__}",
        "pipeline": f"{cls.__module__}.{cls.__qualname__}",
        "precision": precision,
        "io_dtype": "float32",
        "opset": str(opset),
        "exporter": "torch.onnx.export(dynamo=True)",
        "torch_version": torch.__version__,
        "anime_core_version": _core_version(),
        "verified_max_abs_diff": json.dumps({"x".join(map(str, c.shape)): c.max_diff for c in checks}),
    }
    if source:
        meta["source"] = source
    if pipe.kind == "translate":
        assert isinstance(pipe, TranslatePipeline)
        plain_in = cls.preprocess is TranslatePipeline.preprocess
        plain_out = cls.postprocess is TranslatePipeline.postprocess
        meta.update({
            "layout": "NCHW",
            "input": "float (N, C, H, W); H and W multiples of 'stride'",
            "value_range": "[-1, 1]" if plain_in else f"see preprocess ({_doc(cls.preprocess)})",
            "output_range": "[-1, 1]" if plain_out else f"see postprocess ({_doc(cls.postprocess)})",
            "preprocess": "RGB in [0, 1] -> x * 2 - 1; reflect-pad bottom/right to a multiple of 'stride'"
            if plain_in else _doc(cls.preprocess),
            "postprocess": "crop to (H * out_scale, W * out_scale); (y + 1) / 2 clamped to [0, 1] = RGB"
            if plain_out else _doc(cls.postprocess),
            "stride": str(pipe.stride),
            "out_scale": str(pipe.out_scale),
            "preprocess_defaults": json.dumps(pipe.defaults, sort_keys=True),
        })
    else:
        plain_out = cls.postprocess is GeneratePipeline.postprocess
        meta.update({
            "layout": "NC",
            "input": "z: float (N, latent_dim) standard normal" + ("; label: int64 (N,)" if
                                                                   getattr(gen, "num_classes", 0) else ""),
            "value_range": "N(0, 1)",
            "output_range": "[-1, 1]" if plain_out else f"see postprocess ({_doc(cls.postprocess)})",
            "postprocess": "(y + 1) / 2 clamped to [0, 1] = RGB (N, 3, S, S)" if plain_out else _doc(cls.postprocess),
        })
    for name in ATTRIBUTES:
        value = getattr(gen, name, None)
        if isinstance(value, bool) or value is None or not value:  # 0 or []: the pipelines' default
            continue
        if isinstance(value, (int, str, list, tuple)):
            meta[name] = json.dumps(list(value) if isinstance(value, tuple) else value)
    if pipe.kind == "translate" and "in_channels" not in meta:
        meta["in_channels"] = str(_channels(pipe))
    return meta


def _channels(pipe: Pipeline) -> int:
    return int(pipe.preprocess(torch.zeros(1, 3, 8, 8)).shape[1])  # type: ignore[attr-defined]


def _doc(fn: Any) -> str:
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    where = f"{fn.__module__}.{fn.__qualname__}"
    return f"{where}: {doc[0]}" if doc else where


def build_verified(pipe: Pipeline, opset: int | None = None, precision: str = "fp32",
                   generator_options: dict[str, Any] | None = None, source: str = "") -> tuple[Any, list[Check]]:
    """The ModelProto of ``pipe``'s generator with metadata, after it passed the parity checks."""
    if precision not in ("fp32", "fp16"):
        raise UsageError(f"ONNX export supports --precision fp32, fp16 or int8, not {precision}")
    with fp32_weights(pipe):  # the weights' own values, whatever precision the pipeline runs in now
        return _build_verified(pipe, opset, precision, generator_options, source)


def _build_verified(pipe: Pipeline, opset: int | None, precision: str, generator_options: dict[str, Any] | None,
                    source: str) -> tuple[Any, list[Check]]:
    example, checks_in, names = _inputs(pipe)
    proto = _to_proto(_exportable(pipe.generator, precision), example, names, _dynamic_shapes(pipe, names), opset)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset or 0)
    # the reference runs in fp32 on the CPU: a CUDA generator may use TF32 convolutions
    reference = copy.deepcopy(pipe.generator).to("cpu").float().eval()
    with _attention_sides(reference) as sides:
        checks = verify(proto.SerializeToString(), reference, checks_in, names, torch.device("cpu"))
    tolerance = FP32_TOLERANCE if precision == "fp32" else FP16_TOLERANCE
    worst = max(c.max_diff for c in checks)
    if not worst <= tolerance:
        detail = ", ".join(map(str, checks))
        raise ExportError(f"the {precision} ONNX graph differs from PyTorch by up to {worst:.3g} (tolerance "
                          f"{tolerance:g}; {detail}); nothing was written"
                          + ("; export with --precision fp32" if precision == "fp16" else ""))
    meta = metadata(pipe, precision, opset_used, checks, generator_options, source)
    if pipe.kind == "translate" and sides:
        height = checks_in[0][0].shape[-2]
        meta["attention_strides"] = json.dumps(sorted({max(1, height // h) for h in sides}))
    stamp(proto, meta, f"{pipe.spec.name} generator ({meta['generator_class']}), {precision}; "
                       f"pre/post-processing in metadata_props")
    return proto, checks


def stamp(proto: Any, meta: dict[str, str], doc: str | None = None) -> None:
    """Make ``meta`` the graph's ``metadata_props`` (in its order) and mark the graph as ours.

    The one place a graph gets its metadata: after the parity checks (:func:`build_verified`) and
    again after int8 quantization, which rebuilds the graph (:func:`export`). ``doc``, when given,
    becomes the graph's ``doc_string``.
    """
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = PRODUCER
    if doc is not None:
        proto.doc_string = doc



def export(pipe: Pipeline, path: str | Path, opset: int | None = None, precision: str = "fp32",
           generator_options: dict[str, Any] | None = None, source: str = "",
           calibration: list[torch.Tensor] | None = None) -> ExportResult:
    """Export ``pipe``'s generator to ``path`` (atomically) once ONNX Runtime matched PyTorch at two sizes.

    ``precision="int8"``: the verified fp32 graph quantized on ``calibration`` images (:func:`quantize_int8`).
    """
    start = time.perf_counter()
    proto, checks = build_verified(pipe, opset, "fp32" if precision == "int8" else precision, generator_options,
                                   source)
    if precision == "int8":
        meta = {p.key: p.value for p in proto.metadata_props}
        proto, scores = quantize_int8(pipe, proto, list(calibration or []))
        meta.update(precision="int8", int8_psnr_db=json.dumps([round(v, 2) for v in scores]),
                    int8="static QDQ (onnxruntime.quantization), uint8 activations, per-channel int8 weights")
        stamp(proto, meta)
    path = Path(path)
    write_bytes_atomic(path, proto.SerializeToString())
    meta = {p.key: p.value for p in proto.metadata_props}
    return ExportResult(path, meta.get("precision", precision), int(meta["opset"]), checks,
                        time.perf_counter() - start, meta)
