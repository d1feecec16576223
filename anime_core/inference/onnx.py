"""ONNX: export a pipeline's generator with proven parity, and run ONNX graphs through the same pipelines.

**Export** (:func:`export`). The graph holds the generator alone, in the value domain its pipeline
feeds it (RGB in [-1, 1] for most models, normalised L* for ``ae``), with dynamic batch, height and
width; generate models take noise ``(N, latent_dim)`` (and class labels ``(N,)`` when conditional)
and return images. The pipeline's pre/post-processing stays outside the graph and is written into
the graph's ``metadata_props`` (layout, value ranges, stride, out_scale, model, variant, the resize
defaults of the style). Before anything is written, ONNX Runtime runs the graph at two input sizes
and its output is compared with PyTorch's: above :data:`FP32_TOLERANCE` (max abs difference) in
fp32 the export fails. The file is written atomically.

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` based, the default since
torch 2.9). On torch 2.14 both it and the legacy TorchScript tracer (``dynamo=False``) give graphs
that match PyTorch at every size for all shipped generators once self-attention runs unchunked;
the dynamo exporter was kept because a shape it cannot keep symbolic is an error at export time,
while the tracer silently freezes trace-time values into the graph (with chunked attention it
froze the chunk sizes into a ``Split`` node that fails at any other size), and the legacy
exporter is deprecated. Its cost is export time (seconds instead of a fraction of one).

**Running** (:class:`OnnxGenerator`). An ``nn.Module`` without parameters whose forward runs an ONNX
Runtime session. It takes the torch generator's place in the model's own pipeline class, so
padding to the stride, cropping back, tiling, batching, colour spaces (``ae``'s Lab) and the CLI
file runner are the same code for both backends, and an exported file and a third-party graph
behave the same. NCHW or NHWC is read from the graph's input shape (AnimeGANv3 graphs take NHWC
floats in [-1, 1] with sides a multiple of 8 and return NHWC ``tanh`` images); a graph without
our metadata is padded to a multiple of :data:`FOREIGN_STRIDE`.

onnx, onnxscript and onnxruntime are the ``anime-core[onnx]`` extra: imported inside functions only.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import io as _io
import json
import logging
import math
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.contract import EXPORTED
from anime_core.errors import AnimeError, UsageError, WeightsUnavailable
from anime_core.inference import io
from anime_core.inference.onnx_guard import GraphGuard, check_metadata_attribute, printable

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec

ONNX_FORMAT = "anime-core-onnx"
FORMAT_VERSION = "1"
FP32_TOLERANCE = 1e-3  # max |ORT - PyTorch| on the raw generator output, fp32 graphs
FP16_TOLERANCE = 5e-2  # fp16 graphs: about 6/255 of the [-1, 1] range; the measured figure is printed
INT8_MIN_PSNR = 35.0  # dB of the int8 graph's 8-bit image against the fp32 graph's, on every calibration image
FOREIGN_STRIDE = 8  # sides of a graph without our metadata are padded to this multiple (AnimeGANv3's)
EXTRA = 'pip install "anime-core[onnx]"'
STOP_WAIT = 5.0  # seconds a Ctrl-C waits for ONNX Runtime to stop at the next node before it goes on anyway
#: bytes of self-attention scores a graph may hold at once; the graph's attention is unchunked
ATTENTION_BUDGET = 1 << 30
#: generator attributes the pipelines read (named in :mod:`anime_core.contract`); exported as metadata and restored
ATTRIBUTES = EXPORTED


class ExportError(AnimeError):
    """The exported graph does not reproduce the PyTorch generator (exit 1); nothing was written."""


def require(name: str = "onnxruntime") -> types.ModuleType:
    """Import ``onnxruntime``/``onnx``/``onnxscript``; missing -> a usage error naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise UsageError(f"ONNX support needs the '{name}' package, which is not installed; {EXTRA}") from None


# -- running ----------------------------------------------------------------------------------
def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options: every graph optimisation, ``threads`` intra-op threads (default: torch's count)."""
    ort = require()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    return so


def providers(device: torch.device) -> list[str]:
    """Execution providers for ``device``; CUDA needs an onnxruntime build that has it."""
    ort = require()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UsageError("this onnxruntime has no CUDA provider; install onnxruntime-gpu or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device.type != "cpu":
        raise UsageError(f"the onnxruntime backend runs on cpu or cuda, not {device.type}; use --device cpu")
    return ["CPUExecutionProvider"]


def onnx_device(device: str | torch.device | None) -> torch.device:
    """``auto`` for ONNX Runtime: CUDA when both torch and onnxruntime have it, else the CPU."""
    from anime_core.inference.pipeline import pick_device

    if str(device or "auto") == "auto":
        ort = require()
        cuda = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
        return torch.device("cuda" if cuda else "cpu")
    return pick_device(device)


class OnnxGenerator(nn.Module):
    """A generator-like module that runs an ONNX graph; drop-in for the torch generator of a pipeline.

    ``forward(x)`` takes (N, C, H, W) float in the generator's input domain (or noise (N, D) and
    optional labels for generate graphs) and returns the graph's output as float32 NCHW on ``x``'s
    device. Our metadata restores the attributes the pipelines read (``stride``, ``latent_dim``,
    ``in_channels``, ``scale``...); ``meta`` holds all of it.
    """

    def __init__(self, graph: str | Path | bytes, device: str | torch.device = "cpu",
                 threads: int | None = None, what: str = "the ONNX graph") -> None:
        super().__init__()
        ort = require()
        self.what = what
        #: why tiles cannot equal the whole image here (read by the pipelines' tiling)
        self.opaque = "ONNX Runtime runs the graph as one black box (--backend torch tiles exactly)"
        proto = _load(graph, what)
        #: the checks made before ONNX Runtime sees the graph (it folds constants when it loads one)
        self.guard = GraphGuard(proto, what)
        try:
            source = graph if isinstance(graph, bytes) else str(graph)
            self.session = ort.InferenceSession(source, session_options(threads),
                                                providers=providers(torch.device(device)))
        except UsageError:
            raise
        except Exception as exc:  # ORT raises its own exception types for unreadable graphs
            raise WeightsUnavailable(f"{what} is not a valid ONNX graph ({_first_line(exc)})") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.meta: dict[str, str] = meta if meta.get("format") == ONNX_FORMAT else {}  # others' keys mean other things
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.output_name = self.session.get_outputs()[0].name
        self.input_dtype = torch.float16 if inputs[0].type == "tensor(float16)" else torch.float32
        shape = list(inputs[0].shape)
        self.kind = "generate" if len(shape) == 2 else "translate"
        if len(shape) not in (2, 4):
            raise WeightsUnavailable(f"{what} takes a rank-{len(shape)} input; image generators take "
                                     f"(N, C, H, W) or (N, H, W, C) images, or (N, D) noise")
        self.layout = self.meta.get("layout") or (_detect_layout(shape, proto) if self.kind == "translate" else "NC")
        del proto
        self.fixed_size: tuple[int, int] | None = None
        if self.kind == "translate":
            c_axis, h_axis, w_axis = (1, 2, 3) if self.layout == "NCHW" else (3, 1, 2)
            if isinstance(shape[c_axis], int):
                self.in_channels = shape[c_axis]
            if isinstance(shape[h_axis], int) and isinstance(shape[w_axis], int):
                self.fixed_size = (shape[h_axis], shape[w_axis])
            self.stride = FOREIGN_STRIDE
        elif isinstance(shape[1], int):
            self.latent_dim = shape[1]
        for name in ATTRIBUTES:
            if name in self.meta:
                value = _attribute(name, self.meta[name], what)
                check_metadata_attribute(name, value, what)
                setattr(self, name, value)
        self.attention_strides: list[int] = _attribute("attention_strides", self.meta.get("attention_strides", "[]"),
                                                       what)
        self.guard.kind, self.guard.stride = self.kind, int(getattr(self, "stride", 1) or 1)

    def attention_bytes(self, n: int, h: int, w: int) -> int:
        """Bytes of attention scores the graph holds for an (n, C, h, w) input (its attention is unchunked)."""
        return max((4 * n * ((h // d) * (w // d)) ** 2 for d in self.attention_strides), default=0)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        if x.dim() == 4 and self.attention_bytes(n, h, w) > ATTENTION_BUDGET:
            d = min(self.attention_strides)
            tile = max(self.stride, int(d * (ATTENTION_BUDGET / 4) ** 0.25) // self.stride * self.stride)
            need = self.attention_bytes(n, h, w) / 2**30
            raise io.BadImage(f"{self.what} would need {need:.1f} GiB for self-attention at {w}x{h} px on ONNX "
                              f"Runtime; use --tile {tile} (or --batch-size 1, or --backend torch)")
        if self.fixed_size and tuple(x.shape[-2:]) != self.fixed_size:
            h, w = self.fixed_size
            raise io.BadImage(f"{self.what} takes only {w}x{h} px inputs (fixed in the graph), not "
                              f"{x.shape[-1]}x{x.shape[-2]}; use --tile {max(h, w)} on images at least that large")
        if self.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        feed = {self.input_names[0]: x.detach().to("cpu", self.input_dtype).contiguous().numpy()}
        if len(self.input_names) > 1:
            if label is None:
                raise ValueError(f"{self.what} is class-conditional: pass label=(N,) class indices")
            feed[self.input_names[1]] = label.detach().to("cpu", torch.int64).numpy()
        self.guard.check_run({k: tuple(v.shape) for k, v in feed.items()}, h, w)
        out = torch.from_numpy(self._run(feed)).float()
        if self.layout == "NHWC" and out.dim() == 4:
            out = out.permute(0, 3, 1, 2)
        return out.to(x.device)


    def _run(self, feed: dict[str, Any]) -> Any:
        """``session.run`` in a worker thread, so that Ctrl-C stops it between two nodes.

        ONNX Runtime holds the calling thread until the graph is done, and Python handles a signal
        only between bytecodes of the main thread: the main thread waits here instead, and on
        ``KeyboardInterrupt`` sets ``RunOptions.terminate`` (ORT's way to stop a run) and re-raises.
        """
        options = require().RunOptions()
        box: dict[str, Any] = {}
        done = threading.Event()  # not Thread.join: a join interrupted by Ctrl-C marks a running thread stopped

        def work() -> None:
            try:
                box["out"] = self.session.run([self.output_name], feed, options)[0]
            except Exception as exc:  # ORT's own exception types
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="onnxruntime-run", daemon=True).start()
        try:
            while not done.wait(0.1):
                pass
        except KeyboardInterrupt:
            options.terminate = True
            done.wait(STOP_WAIT)
            raise
        if "error" in box:  # a RuntimeError, as a torch forward raises
            raise RuntimeError(f"ONNX Runtime: {_first_line(box['error'])}")
        return box["out"]


def _load(graph: str | Path | bytes, what: str) -> Any:
    """The graph's ModelProto (external data not loaded: the checks need only its shapes)."""
    onnx = require("onnx")
    try:
        if isinstance(graph, bytes):
            return onnx.load_from_string(graph)
        return onnx.load(str(graph), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own types
        raise WeightsUnavailable(f"{what} is not a valid ONNX graph ({_first_line(exc)})") from None


LIST_ATTRIBUTES = {"class_names": str, "attention_strides": int}


def _attribute(name: str, text: str, what: str) -> Any:
    """A generator attribute from the metadata, bounded like options read from a weights file."""
    from anime_core.weights.files import MAX_OPTION_INT, MAX_OPTION_ITEMS, MAX_OPTION_STR

    def fits(v: Any, kind: type) -> bool:
        if kind is str:
            return isinstance(v, str) and len(v) <= MAX_OPTION_STR
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_OPTION_INT

    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if name in LIST_ATTRIBUTES:
        ok = isinstance(value, list) and len(value) <= MAX_OPTION_ITEMS and all(
            fits(v, LIST_ATTRIBUTES[name]) for v in value)
    else:
        ok = fits(value, int)
    if not ok:
        raise WeightsUnavailable(f"{what} has corrupt metadata ({name}='{printable(text, 40)}'); export it again")
    return value


def _first_line(exc: BaseException) -> str:
    """The first line of an error from ONNX Runtime or onnx, which may quote names from the file: escaped."""
    text = str(exc).strip().splitlines()
    return printable(text[0], 300) if text else type(exc).__name__


def _detect_layout(shape: list[Any], proto: Any) -> str:
    """NCHW or NHWC from the input shape; when both channel axes are symbolic, from a leading Transpose."""
    first, last = shape[1], shape[3]
    if isinstance(first, int) and first in (1, 3, 4):
        return "NCHW"
    if isinstance(last, int) and last in (1, 3, 4):
        return "NHWC"
    name = proto.graph.input[0].name
    for node in proto.graph.node:  # graphs converted from TensorFlow start with NHWC -> NCHW
        if name in node.input and node.op_type == "Transpose":
            perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
            if perm == [[0, 3, 1, 2]]:
                return "NHWC"
    return "NCHW"


def check_graph(gen: OnnxGenerator, spec: ModelSpec, part: str, hint: str) -> None:
    """Refuse a graph exported for another model, another part, or of the other kind (image vs noise)."""
    owner = gen.meta.get("model")
    if owner and owner != spec.name:
        raise WeightsUnavailable(f"{gen.what} was exported from model '{printable(owner, 60)}', not '{spec.name}'; "
                                 f"run 'anime run {printable(owner, 60)}'")
    held = gen.meta.get("part")
    if held and held != part:
        raise WeightsUnavailable(f"{gen.what} holds the '{printable(held, 60)}' part, not the '{part}' that runs "
                                 f"{hint}")
    if gen.kind != spec.kind:
        takes = "noise" if gen.kind == "generate" else "images"
        raise WeightsUnavailable(f"{gen.what} takes {takes}, but '{spec.name}' is a {spec.kind} model; "
                                 f"use it with a {gen.kind} model")


def onnx_pipeline(
    cls: type[Pipeline],
    spec: ModelSpec,
    graph: str | Path | bytes,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    preprocess: dict[str, Any] | None = None,
    threads: int | None = None,
    what: str | None = None,
    **options: Any,
) -> Pipeline:
    """The model's own pipeline class around an :class:`OnnxGenerator` (exported or third-party graph).

    The graph fixes its precision: ``precision`` other than fp32 is refused here (export with
    ``--precision fp16`` instead). The resize defaults recorded at export apply unless
    ``preprocess`` sets them.
    """
    if precision != "fp32":
        raise UsageError(f"an ONNX graph keeps the precision it was exported with; drop --precision {precision} "
                         f"(export with 'anime export ... --precision fp16' for a half-precision graph)")
    if not isinstance(graph, bytes) and not Path(graph).is_file():
        raise WeightsUnavailable(f"weights file {graph} does not exist")
    dev = onnx_device(device)
    what = what or (f"ONNX file {graph}" if not isinstance(graph, bytes) else "the ONNX graph")
    gen = OnnxGenerator(graph, dev, threads, what)
    check_graph(gen, spec, cls.weights_part(options), cls.part_hint(options))
    defaults = _defaults(gen)
    defaults.update(preprocess or {})
    return cls(spec, {"generator": gen}, device=dev, precision="fp32", preprocess=defaults, **options)


def _defaults(gen: OnnxGenerator) -> dict[str, Any]:
    """The resize defaults recorded at export (``size``, ``center_crop``), checked like any metadata."""
    try:
        value = json.loads(gen.meta.get("preprocess_defaults", "{}"))
    except (json.JSONDecodeError, RecursionError):
        value = None
    size = value.get("size") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not (size is None or (isinstance(size, int) and 0 < size <= 1 << 16)):
        raise WeightsUnavailable(f"{gen.what} has corrupt metadata (preprocess_defaults); export it again")
    return {k: v for k, v in value.items() if k in ("size", "center_crop")}


def to_onnxruntime(pipe: Pipeline, cls: type[Pipeline], device: str | torch.device | None = None,
                   threads: int | None = None, cache: Path | None = None, **kwargs: Any) -> Pipeline:
    """``pipe`` (torch) as the same pipeline class running on ONNX Runtime.

    The graph is exported and verified once, then kept in ``cache`` (default
    ``$ANIME_HOME/onnx``) under a digest of the generator's tensors, class, options and precision,
    with its sha256 beside it: a cached file that no longer matches is rebuilt (with one note).
    """
    from anime_core.weights.store import anime_home

    precision = pipe.precision
    if precision not in ("fp32", "fp16"):
        raise UsageError(f"the onnxruntime backend runs fp32 or fp16 graphs, not {precision}")
    folder = cache or anime_home() / "onnx"
    path = folder / f"{pipe.spec.name}-{_digest(pipe, precision)}.onnx"
    graph: Path | bytes = path
    state = _cache_state(path)
    if state != "ok":
        proto, _ = build_verified(pipe, precision=precision)
        graph = proto.SerializeToString()
        with contextlib.suppress(OSError):  # a read-only cache still runs, from memory
            _write(graph, path)
            _write(f"{hashlib.sha256(graph).hexdigest()}  {path.name}\n".encode(), _sidecar(path))
        if state == "damaged" and path not in _NOTED:
            _NOTED.add(path)
            print(f"note: cached ONNX export {path} was damaged; rebuilt", file=sys.stderr)
    return onnx_pipeline(cls, pipe.spec, graph, device, "fp32", pipe.defaults, threads,
                         f"the ONNX export of {pipe.spec.name}", **kwargs)


_NOTED: set[Path] = set()  # damaged cached exports already reported in this process


def _sidecar(path: Path) -> Path:
    """Where the sha256 of a cached export is kept (``sha256sum`` format), written after the graph."""
    return path.with_name(path.name + ".sha256")


def _cache_state(path: Path) -> str:
    """``"ok"`` (its sha256 matches the one stored beside it), ``"missing"`` or ``"damaged"``.

    No readable sidecar (a cache from before sidecars, or a crash between the two writes) is
    ``"missing"``: rebuilt quietly. A mismatch (a truncated or altered file) is ``"damaged"``.
    """
    if not path.is_file():
        return "missing"
    try:
        want = _sidecar(path).read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return "missing"
    try:
        with path.open("rb") as fh:
            got = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return "damaged"
    return "ok" if got == want else "damaged"


def _digest(pipe: Pipeline, precision: str) -> str:
    """Tensors, classes and plain attributes of every submodule (options such as an up-sampling mode)."""
    h = hashlib.sha256()
    gen = pipe.generator
    part = type(pipe).weights_part(pipe.options)
    h.update(f"{precision}|{part}|{torch.__version__}|{FORMAT_VERSION}|{type(pipe).__qualname__}".encode())
    for name, module in gen.named_modules():
        plain = {k: v for k, v in vars(module).items()
                 if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple, list))}
        h.update(f"{name}:{type(module).__module__}.{type(module).__qualname__}:{sorted(plain.items())!r}".encode())
    for key, tensor in sorted(gen.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def _write(data: bytes, path: Path) -> None:
    from anime_core.fsutil import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# -- export -----------------------------------------------------------------------------------
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
    from anime_core.layers import SelfAttention

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
    from anime_core.layers import SelfAttention

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
              dynamic: tuple[dict[int, str], ...], opset: int | None) -> Any:
    """``torch.onnx.export(dynamo=True)`` to an in-memory ModelProto; its progress chatter is silenced."""
    for name in ("onnx", "onnxscript"):
        require(name)
    chatter = _io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, example, dynamo=True, input_names=names, output_names=["output"],
                dynamic_shapes=dynamic, opset_version=opset, optimize=True, verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export could not export this generator ({type(exc).__name__}: "
                          f"{_first_line(exc)}); nothing was written") from None
    return program.model_proto


def _ort_outputs(data: bytes, inputs: list[tuple[torch.Tensor, ...]], names: list[str]) -> list[Any]:
    import numpy as np

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
    from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline
    from anime_core.registry import _core_version

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
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "anime-core"
    proto.doc_string = (f"{pipe.spec.name} generator ({meta['generator_class']}), {precision}; "
                        f"pre/post-processing in metadata_props")
    return proto, checks


def _unique_initializer_names(proto: Any) -> None:
    """Rename initializers apart from node outputs: the dynamo exporter may give a GroupNorm constant and a
    node output the same name, and ONNX Runtime's quantizer then feeds the constant to the next Conv."""
    rename = {i.name: f"init::{i.name}" for i in proto.graph.initializer}
    for init in proto.graph.initializer:
        init.name = rename[init.name]
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]


def quantize_int8(pipe: Pipeline, proto: Any, calibration: list[torch.Tensor]) -> tuple[Any, list[float]]:
    """Static int8 (QDQ, per-channel weights) of a verified fp32 graph, calibrated and checked on real images.

    ``calibration``: (3, H, W) uint8 images as the pipeline would run them (resized). Each goes
    through both graphs and the pipeline's pre/post-processing; below :data:`INT8_MIN_PSNR` dB on
    any image the export fails. Returns the int8 ModelProto and the PSNR of each image.
    """
    import tempfile

    from anime_core.inference.pipeline import TranslatePipeline
    from anime_core.inference.tiling import pad_to_multiple
    from anime_core.ops import psnr

    if not isinstance(pipe, TranslatePipeline):
        raise UsageError("--precision int8 is for image-to-image models (it is calibrated on photos)")
    if not calibration:
        raise UsageError("--precision int8 needs calibration photos: add --calibrate FOLDER (a few typical inputs)")
    require("onnx")
    quantization = require("onnxruntime.quantization")
    ort = require()
    feeds = []
    for image in calibration:
        x = image[None].float() / 255
        padded, _ = pad_to_multiple(x, pipe.stride)
        feeds.append((x, pipe.preprocess(padded).float().numpy()))

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": feed} for _, feed in feeds])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    fp32 = copy.deepcopy(proto)
    del fp32.metadata_props[:]
    _unique_initializer_names(fp32)
    chatter = _io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32.SerializeToString())
        logging.disable(logging.WARNING)  # the quantizer logs a line per bias and norm constant on the root logger
        try:
            quantization.quantize_static(src, dst, Reader(), quant_format=quantization.QuantFormat.QDQ,
                                         per_channel=True, activation_type=quantization.QuantType.QUInt8,
                                         weight_type=quantization.QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        data = dst.read_bytes()
    sessions = [ort.InferenceSession(g, session_options(), providers=["CPUExecutionProvider"])
                for g in (fp32.SerializeToString(), data)]
    scores = []
    for x, feed in feeds:
        h, w = x.shape[-2:]
        s = pipe.out_scale
        images = [(pipe.postprocess(torch.from_numpy(sess.run(None, {"input": feed})[0])[..., : h * s, : w * s], x)
                   * 255).round() / 255 for sess in sessions]
        scores.append(float(psnr(images[1], images[0])[0]))
    if min(scores) < INT8_MIN_PSNR:
        raise ExportError(f"the int8 graph's images are {min(scores):.1f} dB from fp32's on the worst calibration "
                          f"photo (at least {INT8_MIN_PSNR:g} dB needed; "
                          f"{', '.join(f'{v:.1f}' for v in scores)}); export with --precision fp32")
    onnx = require("onnx")
    return onnx.load_from_string(data), scores


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
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "anime-core"
    path = Path(path)
    _write(proto.SerializeToString(), path)
    meta = {p.key: p.value for p in proto.metadata_props}
    return ExportResult(path, meta.get("precision", precision), int(meta["opset"]), checks,
                        time.perf_counter() - start, meta)
