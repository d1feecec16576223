"""OpenVINO backend: the verified ONNX export of a generator, compiled by OpenVINO's CPU plugin.

Why: on a CPU with native bf16 (AVX512-BF16, AMX) OpenVINO's default inference (bf16, fused
convolutions with their activations) ran AnimeGAN v2 1.8-2x faster than torch's bf16 autocast and
3.6-5x faster than fp32 (benchmarks/RESULTS.md, "Precision auto and OpenVINO"). The graph is the
one ``--backend onnxruntime`` runs: exported with :func:`~anime_core.inference.backends.onnx_export.build_verified`
(ONNX Runtime matched PyTorch at two sizes before anything is kept) and cached under
``$ANIME_HOME/onnx`` with its sha256 beside it (:func:`~.onnx_cache.cached_export`), so both backends share
one export per weights file.

:class:`OpenVinoGenerator` is an :class:`~.onnx_runtime.OnnxGenerator` whose graph runs
on an OpenVINO compiled model instead of the ONNX Runtime session: metadata, layout, the graph's
guards and the pipelines around it are the same code. It compiles one model per precision it is
asked for (``fp32`` pins ``INFERENCE_PRECISION_HINT=f32``; ``bf16``/``fp16`` ask for those) with
the LATENCY hint and torch's thread count; :meth:`OpenVinoGenerator.native_precision` is what
OpenVINO's CPU plugin picks by default on this CPU (bf16 with AVX512-BF16/AMX, f32 on AVX2), which
``--precision auto`` tries first (:mod:`anime_core.inference.precision`).

openvino is the ``anime-core[openvino]`` extra (with the ``onnx`` extra, which exports and verifies):
imported inside functions only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from anime_core.errors import UsageError
from anime_core.inference.backends.onnx_cache import cached_export, cut_store
from anime_core.inference.backends.onnx_runtime import OnnxGenerator, check_graph, first_line, graph_defaults
from anime_core.inference.backends.onnx_segments import SegmentTiles

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec

EXTRA = 'pip install "anime-core[openvino]"'
#: our precision names -> OpenVINO's element types for INFERENCE_PRECISION_HINT
OV_TYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
STOP_MS = 100  # a Ctrl-C is seen within this many ms of an inference


def available() -> bool:
    """Whether the openvino package (and ONNX export, which it runs) can be imported, without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("openvino", "onnxruntime", "onnx"))


def require() -> types.ModuleType:
    try:
        import openvino
    except ImportError:
        raise UsageError(f"the openvino backend needs the 'openvino' package, which is not installed; {EXTRA}") \
            from None
    return openvino


@functools.cache
def native_precision() -> str:
    """The precision OpenVINO's CPU plugin runs by default on this CPU: bf16 with AVX512-BF16/AMX, f16 on some
    ARM CPUs, else fp32 (its ``INFERENCE_PRECISION_HINT``)."""
    ov = require()
    hint = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    return next((name for name, t in (("bf16", ov.Type.bf16), ("fp16", ov.Type.f16)) if hint == t), "fp32")


class OpenVinoGenerator(OnnxGenerator):
    """An ONNX graph run by OpenVINO's CPU plugin; drop-in for the torch generator of a pipeline.

    The ONNX Runtime session the base class opens reads the graph's metadata and shapes and is
    then dropped (a fraction of a second once per load; the guards and metadata stay one code path).
    """

    backend = "openvino"

    def __init__(self, graph: str | Path | bytes, threads: int | None = None, what: str = "the ONNX graph") -> None:
        ov = require()
        super().__init__(graph, "cpu", threads, what)
        del self.session
        self.opaque = "OpenVINO runs the graph as one black box (--backend torch tiles exactly)"
        data = graph if isinstance(graph, bytes) else Path(graph).read_bytes()
        #: the graph's sha256: the precision verdicts' key (:mod:`anime_core.inference.precision`)
        self.weights_digest = hashlib.sha256(data).hexdigest()[:20]
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(data)
        except Exception as exc:  # OpenVINO's own exception types
            raise UsageError(f"OpenVINO cannot read {what} ({first_line(exc)}); use --backend onnxruntime") \
                from None
        self.threads = int(threads or torch.get_num_threads())
        self._compiled: dict[str, Any] = {}
        self._requests: dict[str, Any] = {}
        self.precision = "fp32"

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenVinoGenerator:
        """Itself: OpenVINO's Core and compiled models cannot be copied, and running a graph changes nothing in it."""
        return self

    def native_precision(self) -> str:
        """The precision OpenVINO's CPU plugin runs by default here (bf16 with AVX512-BF16/AMX, else fp32)."""
        return native_precision()

    def set_precision(self, precision: str) -> None:
        """Run in ``precision`` from now on (compiled on first use)."""
        if precision not in OV_TYPES:
            raise UsageError(f"the openvino backend runs fp32, bf16 or fp16, not {precision}")
        self.precision = precision

    def request(self, precision: str | None = None) -> Any:
        """The infer request of the model compiled for ``precision`` (default: the current one)."""
        precision = precision or self.precision
        if precision not in self._requests:
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OV_TYPES[precision],
                      "INFERENCE_NUM_THREADS": self.threads}
            try:
                compiled = self.core.compile_model(self.model, "CPU", config)
            except Exception as exc:
                raise RuntimeError(f"OpenVINO could not compile {self.what} in {precision} "
                                   f"({first_line(exc)})") from None
            self._compiled[precision] = compiled
            self._requests[precision] = compiled.create_infer_request()
        return self._requests[precision]

    def segment_runner(self, graph: bytes) -> Callable[[dict[str, Any], list[str]], list[Any]]:
        """A segment of the cut export (:mod:`.onnx_segments`) on this Core, compiled as :meth:`request` compiles
        (LATENCY, the threads) in the precision this generator runs at each call (bf16 where it is the default)."""
        model = self.core.read_model(graph)
        requests: dict[str, Any] = {}

        def run(feed: dict[str, Any], outputs: list[str]) -> list[Any]:
            precision = self.precision
            if precision not in requests:
                config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OV_TYPES[precision],
                          "INFERENCE_NUM_THREADS": self.threads}
                requests[precision] = self.core.compile_model(model, "CPU", config).create_infer_request()
            req = requests[precision]
            try:
                req.infer(feed, share_inputs=True)  # the feed lives until infer returns: no copy
            except Exception as exc:  # OpenVINO's own exception types
                raise RuntimeError(f"OpenVINO: {first_line(exc)}") from None
            return [req.get_tensor(name).data.copy() for name in outputs]  # buffers are reused by the next call

        return run

    def _run(self, feed: dict[str, Any]) -> Any:
        """One inference; Ctrl-C cancels it (the wait returns to Python every :data:`STOP_MS` ms)."""
        req = self.request()
        try:
            req.start_async(feed, share_inputs=True)  # the feed is ours until the wait ends: no copy
            while not req.wait_for(STOP_MS):
                pass
        except KeyboardInterrupt:
            req.cancel()
            raise
        except Exception as exc:  # a RuntimeError, as a torch forward raises
            raise RuntimeError(f"OpenVINO: {first_line(exc)}") from None
        return req.get_output_tensor(0).data.copy()  # the request's buffer is reused by the next call


def openvino_pipeline(cls: type[Pipeline], spec: ModelSpec, graph: str | Path | bytes,
                      device: str | torch.device | None = None, precision: str = "auto",
                      preprocess: dict[str, Any] | None = None, threads: int | None = None,
                      what: str | None = None, **options: Any) -> Pipeline:
    """The model's own pipeline class around an :class:`OpenVinoGenerator`; CPU only."""
    if str(device or "auto") not in ("auto", "cpu"):
        raise UsageError(f"the openvino backend runs on the CPU, not {device}; use --device cpu or --backend torch")
    if not isinstance(graph, bytes) and not Path(graph).is_file():
        from anime_core.errors import WeightsUnavailable

        raise WeightsUnavailable(f"weights file {graph} does not exist")
    what = what or (f"ONNX file {graph}" if not isinstance(graph, bytes) else "the ONNX graph")
    gen = OpenVinoGenerator(graph, threads, what)
    check_graph(gen, spec, cls.weights_part(options), cls.part_hint(options))
    defaults = graph_defaults(gen)
    defaults.update(preprocess or {})
    return cls(spec, {"generator": gen}, device="cpu", precision=precision, preprocess=defaults, **options)


def to_openvino(pipe: Pipeline, cls: type[Pipeline], device: str | torch.device | None = None,
                precision: str = "auto", threads: int | None = None, cache: Path | None = None,
                **kwargs: Any) -> Pipeline:
    """``pipe`` (torch, fp32) as the same pipeline class running on OpenVINO in ``precision``.

    Images that need tiles run exactly, with the torch pipeline's plan and norm statistics gathered
    across tiles. Their convolutions run on ``pipe`` itself in the graph's precision wherever torch
    computes it natively (fp32; bf16 with AVX512-BF16/AMX), else on OpenVINO in the cut export's
    segments (:mod:`.onnx_segments`). Why: OpenVINO keeps maps in its own blocked bf16 layout, so
    each cut costs a reorder in and one out, which OpenVINO's own per-layer counters put above the
    convolution they surround (AnimeGAN v2 at 1024 px, AMX: segment ``Pad, Conv`` 155 ms reorder in,
    107 ms convolution, 142 ms reorder out). Its segments took 2.7x the whole graph, and its 2048 px
    tiles 4.3x its untiled time; on torch bf16 (its nets cast) 1.72x (benchmarks/RESULTS.md).
    """
    graph = openvino_pipeline(cls, pipe.spec, cached_export(pipe, "fp32", cache), device, precision, pipe.defaults,
                              threads, f"the ONNX export of {pipe.spec.name}", **kwargs)
    if pipe.kind == "translate":
        graph.tile_source = SegmentTiles(pipe, cut_store(pipe, cache), graph.generator.segment_runner,
                                         on_torch=functools.partial(_torch_runs, pipe.device))
    return graph


def _torch_runs(device: torch.device, precision: str) -> bool:
    """Whether torch computes ``precision`` natively on ``device`` (where an OpenVINO pipeline's tiles run on torch)."""
    from anime_core.inference.precision import precision_accelerated

    return precision == "fp32" or precision_accelerated(device, precision)


class OpenVinoBackend:
    """:class:`~anime_core.inference.backends.base.Backend` for OpenVINO (CPU)."""

    name = "openvino"
    devices = ("cpu",)
    precisions = ("fp32", "bf16", "fp16")  # and auto: the native one if it passes the parity check
    suffixes = (".onnx",)

    def from_torch(self, pipe: Pipeline, cls: type[Pipeline], device: str | None = None,
                   precision: str = "auto", **options: Any) -> Pipeline:
        return to_openvino(pipe, cls, device, precision, **options)

    def open(self, cls: type[Pipeline], spec: ModelSpec, path: str | Path | bytes, device: str | None = None,
             precision: str = "auto", preprocess: dict[str, Any] | None = None, **options: Any) -> Pipeline:
        return openvino_pipeline(cls, spec, path, device, precision, preprocess, **options)


BACKEND = OpenVinoBackend()
