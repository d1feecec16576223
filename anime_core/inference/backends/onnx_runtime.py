"""ONNX Runtime as a backend: run ONNX graphs through the models' own pipelines.

:class:`OnnxGenerator` is an ``nn.Module`` without parameters whose forward runs an ONNX Runtime
session. It takes the torch generator's place in the model's own pipeline class, so padding to
the stride, cropping back, tiling, batching, colour spaces (``ae``'s Lab) and the file runner are
the same code for both backends, and an exported file and a third-party graph behave the same.
NCHW or NHWC is read from the graph's input shape (AnimeGANv3 graphs take NHWC floats in [-1, 1]
with sides a multiple of 8 and return NHWC ``tanh`` images); a graph without our metadata
(:data:`ONNX_FORMAT`, written by :mod:`.onnx_export`) is padded to a multiple of
:data:`FOREIGN_STRIDE`. Every graph passes :class:`~.onnx_guard.GraphGuard` before a session is
made and before each run.

onnx and onnxruntime are the ``anime-core[onnx]`` extra: imported through :func:`require` when a
graph is loaded, so a build without them still runs the torch backend.
"""

from __future__ import annotations

import importlib
import json
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from anime_core.contract import EXPORTED
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.inference import io
from anime_core.inference.backends.onnx_guard import GraphGuard, check_metadata_attribute, printable
from anime_core.inference.pipeline import pick_device
from anime_core.weights.files import MAX_OPTION_INT, MAX_OPTION_ITEMS, MAX_OPTION_STR

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec

ONNX_FORMAT = "anime-core-onnx"
FORMAT_VERSION = "1"
FOREIGN_STRIDE = 8  # sides of a graph without our metadata are padded to this multiple (AnimeGANv3's)
EXTRA = 'pip install "anime-core[onnx]"'
STOP_WAIT = 5.0  # seconds a Ctrl-C waits for ONNX Runtime to stop at the next node before it goes on anyway
#: bytes of self-attention scores a graph may hold at once; the graph's attention is unchunked
ATTENTION_BUDGET = 1 << 30
#: generator attributes the pipelines read (named in :mod:`anime_core.contract`); exported as metadata and restored
ATTRIBUTES = EXPORTED


def require(name: str = "onnxruntime") -> types.ModuleType:
    """Import ``onnxruntime``/``onnx``/``onnxscript``; missing -> a usage error naming the extra to install."""
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

    backend = "onnxruntime"

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
            raise WeightsUnavailable(f"{what} is not a valid ONNX graph ({first_line(exc)})") from None
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
            raise RuntimeError(f"ONNX Runtime: {first_line(box['error'])}")
        return box["out"]


def _load(graph: str | Path | bytes, what: str) -> Any:
    """The graph's ModelProto (external data not loaded: the checks need only its shapes)."""
    onnx = require("onnx")
    try:
        if isinstance(graph, bytes):
            return onnx.load_from_string(graph)
        return onnx.load(str(graph), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own types
        raise WeightsUnavailable(f"{what} is not a valid ONNX graph ({first_line(exc)})") from None


LIST_ATTRIBUTES = {"class_names": str, "attention_strides": int}


def _attribute(name: str, text: str, what: str) -> Any:
    """A generator attribute from the metadata, bounded like options read from a weights file."""
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


def first_line(exc: BaseException) -> str:
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
    defaults = graph_defaults(gen)
    defaults.update(preprocess or {})
    return cls(spec, {"generator": gen}, device=dev, precision="fp32", preprocess=defaults, **options)


def graph_defaults(gen: OnnxGenerator) -> dict[str, Any]:
    """The resize defaults recorded at export (``size``, ``center_crop``), checked like any metadata."""
    try:
        value = json.loads(gen.meta.get("preprocess_defaults", "{}"))
    except (json.JSONDecodeError, RecursionError):
        value = None
    size = value.get("size") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not (size is None or (isinstance(size, int) and 0 < size <= 1 << 16)):
        raise WeightsUnavailable(f"{gen.what} has corrupt metadata (preprocess_defaults); export it again")
    return {k: v for k, v in value.items() if k in ("size", "center_crop")}
