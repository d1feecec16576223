"""Inference speed of every generator against the machine's limit, in one process and one run.

For each generator and size it times, interleaved round by round so that load changes hit every
path alike:

- ``eager``: the plain reference, ``generator(x)`` under ``torch.no_grad`` on a prepared tensor;
- ``pipeline``: our default path, ``TranslatePipeline.translate`` on a uint8 image (value
  mapping, stride padding, cropping, the copy back to the CPU included) or ``decode_latents``,
  with the device's speed settings (CPU: channels-last and freed-memory reuse; CUDA: channels-last,
  cuDNN autotuning once a shape repeats, autocast with ``--precision``);
- ``pipeline-plain``: the same pipeline with those settings off (NCHW, glibc's default allocation);
- ``onnxruntime``: ``session.run`` on the verified export with tuned session options (every
  graph optimisation, intra-op threads = torch's) and ``ort-default`` with ONNX Runtime's defaults;
- ``pipeline-ort``: our pipeline with the ONNX Runtime generator (``anime run --backend onnxruntime``);
- ``jit-frozen``: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference`` (oneDNN fusions);
- ``channels-last``: eager with NHWC weights and input;
- ``compile``: ``torch.compile`` (inductor) after its warm-up, whose time is printed;
- ``pipeline-bf16``: the torch pipeline with ``--precision bf16`` (its nets cast to bf16 on the CPU,
  autocast on a GPU: ``anime_core.inference.casting``);
- ``openvino-f32`` / ``openvino``: OpenVINO (where installed) on the same verified export, the
  compiled model's ``infer`` on a ready tensor with the LATENCY hint, f32 pinned / its default
  precision (bf16 on CPUs with AVX512-BF16/AMX); ``ov-int8``: the calibrated int8 graph on OpenVINO;
- ``load-default``: ``anime_core.load(model, weights=FILE)(pil_image)`` with default settings
  (``--backend auto``, ``--precision auto``), the figure the issue-26 bar is about.

After the table it prints, per size, load-default / openvino (bar: at most 1.1 on a CPU with native
bf16; 1.1x OpenVINO f32 on one without) and pipeline / eager (bar: at most 0.8).

The default paths are eager, pipeline, pipeline-plain, onnxruntime, pipeline-ort and
channels-last; add ort-default, ort-int8 (``anime export --precision int8``, calibrated on the timed
input, its PSNR against fp32 in the note), jit-frozen and compile with
``--methods`` (compile costs minutes per size on two cores). It prints achieved GFLOP/s (FLOPs
counted by ``torch.utils.flop_counter`` on the eager forward) against the machine's measured matmul
GFLOP/s (2048x2048), the load average, each path's time relative to eager, the process CPU
seconds of the fastest call (with ``--threads 1`` the figure that other jobs on a shared machine
disturb least), the first call's time (what a single image pays) and the largest difference of
each path's output from eager's, in 8-bit levels on the [0, 255] image. Weights are random (speed
does not depend on their values); ``--photo`` times a real photo instead of noise.

``--device cuda`` runs the same table on the GPU (fp32 matmul peak on the GPU, synchronised
timings, ``--precision fp16|bf16`` autocast in the pipeline); without a GPU it prints one line
saying so and exits 0. The CPU-only paths (ONNX Runtime's CPU sessions, jit-frozen) are left out there.

    python benchmarks/bench_speed.py                                  # every generator, 256/512/1024
    python benchmarks/bench_speed.py --models animegan-v2 --sizes 512 --reps 7
    python benchmarks/bench_speed.py --methods eager,pipeline,onnxruntime --threads 2
    python benchmarks/bench_speed.py --device cuda --precision fp16   # a GPU, when there is one
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# name: (model, generator options)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "animegan-v1": ("animegan", {"variant": "v1"}),
    "animegan-v2": ("animegan", {"variant": "v2"}),
    "cyclegan-resnet": ("cyclegan", {"arch": "resnet"}),
    "cyclegan-unet": ("cyclegan", {"arch": "unet"}),
    "ae": ("ae", {}),
    "pixelsake-sr": ("pixelsake-sr", {}),  # SIZE is the output side: the input is SIZE / 4
    "dcgan": ("dcgan", {}),  # generate: SIZE is ignored, a batch of 64 latents is timed
}
METHODS = ["eager", "pipeline", "pipeline-plain", "pipeline-bf16", "onnxruntime", "ort-default", "ort-int8",
           "pipeline-ort", "openvino-f32", "openvino", "ov-int8", "load-default", "jit-frozen", "channels-last",
           "compile"]
DEFAULT_METHODS = ["eager", "pipeline", "pipeline-bf16", "onnxruntime", "openvino-f32", "openvino", "load-default"]
# ORT's and OpenVINO's CPU sessions; TorchScript's oneDNN passes
CPU_ONLY = {"onnxruntime", "ort-default", "ort-int8", "jit-frozen", "openvino-f32", "openvino", "ov-int8"}
RAW = {"eager", "onnxruntime", "ort-default", "ort-int8", "jit-frozen", "channels-last", "compile", "openvino-f32",
       "openvino", "ov-int8"}  # generator output


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, reps: int = 5) -> float:
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _timed_both(fn: Callable[[], Any], device: torch.device) -> tuple[float, float, Any]:
    """(wall, process CPU) seconds and the result: with one thread the CPU time barely depends on others' load."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def count_flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def plain(cls: type) -> type:
    """The pipeline class with the speed settings off: NCHW memory and glibc's default allocation."""
    return type(f"Plain{cls.__name__}", (cls,), {"channels_last_policy": False, "reuse_cpu_memory": False})


def photo_tensor(path: Path, side: int) -> torch.Tensor:
    """A real photo, centre-cropped to a ``side`` square, as (3, side, side) uint8."""
    from PIL import Image

    from anime_core.inference import io

    with Image.open(path) as im:
        return io.to_tensor(io.resize_long_side(io.to_rgb(im), side, center_crop=True))


class Case:
    """One generator at one size: its pipelines, inputs, and a callable per method."""

    def __init__(self, name: str, size: int, threads: int, device: torch.device, precision: str,
                 photo: Path | None) -> None:
        from anime_core.api import pipeline_class
        from anime_core.registry import get_registry

        model, options = MODELS[name]
        reg = get_registry()
        spec = reg.model(model)
        torch.manual_seed(0)
        self.generator = reg.build(spec, "generator", **options).eval().requires_grad_(False).to(device)
        cls = pipeline_class(spec)
        # each pipeline gets its own copy: a pipeline converts its nets' memory format in place
        self.pipe = cls(spec, {"generator": copy.deepcopy(self.generator)}, device=device, precision=precision)
        self.plain = plain(cls)(spec, {"generator": copy.deepcopy(self.generator)}, device=device,
                                precision=precision)
        self.name, self.size, self.threads, self.device = name, size, threads, device
        if self.pipe.kind == "generate":
            self.image = None
            self.args: tuple[torch.Tensor, ...] = (self.pipe.latents(64, 0).to(device),)
            self.x01 = None
        else:
            side = size // int(getattr(self.generator, "scale", 1) or 1)
            self.image = (photo_tensor(photo, side) if photo else
                          torch.randint(0, 256, (3, side, side), dtype=torch.uint8))
            self.x01 = self.image[None].float().to(device) / 255
            self.args = (self.pipe.preprocess(self.x01).contiguous(),)
        self.bf16 = cls(spec, {"generator": copy.deepcopy(self.generator)}, device=device, precision="bf16")
        self.graph: bytes | None = None
        self._ort_pipe: Any = None
        self._int8: Any = None
        self.export_s = 0.0
        self.model_name, self.options = model, options

    def image01(self, out: Any, method: str) -> torch.Tensor:
        """A method's output as the [0, 1] image the pipeline writes, to compare paths."""
        if hasattr(out, "getdata"):  # a PIL image (load-default)
            from anime_core.inference import io

            out = io.to_tensor(out).float() / 255
        elif not isinstance(out, (torch.Tensor, list)) and hasattr(out, "to_tuple"):  # OpenVINO's OVDict
            out = out.to_tuple()[0]
        y = torch.as_tensor(out[0] if isinstance(out, (list, tuple)) else out).float().to(self.device)
        if method not in RAW:
            return y if y.dim() == 4 else y[None]
        if self.x01 is None:
            return self.pipe.postprocess(y)
        return self.pipe.postprocess(y, self.x01)

    def onnx_graph(self) -> bytes:
        if self.graph is None:
            from anime_core.inference.backends import onnx_export

            start = time.perf_counter()
            proto, _ = onnx_export.build_verified(self.plain)
            self.graph = proto.SerializeToString()
            self.export_s = time.perf_counter() - start
        return self.graph

    def ort_pipe(self) -> Any:
        """Our pipeline around the tuned ONNX Runtime session (``anime run --backend onnxruntime``)."""
        if self._ort_pipe is None:
            from anime_core.inference.backends import onnx_runtime

            self._ort_pipe = onnx_runtime.onnx_pipeline(type(self.pipe), self.pipe.spec, self.onnx_graph(), self.device,
                                                threads=self.threads)
        return self._ort_pipe

    def int8_graph(self) -> tuple[bytes, str]:
        """The calibrated int8 graph (``anime export --precision int8``, calibrated on the timed input)."""
        if self._int8 is None:
            from anime_core.inference.backends import onnx_quant, onnx_runtime

            if self.image is None:
                raise RuntimeError("int8 is calibrated on photos: image models only")
            start = time.perf_counter()
            fp32 = onnx_runtime.require("onnx").load_from_string(self.onnx_graph())
            graph, scores = onnx_quant.quantize_int8(self.plain, fp32, [self.image])
            self._int8 = (graph.SerializeToString(),
                          f"calibrate+quantize {time.perf_counter() - start:.0f} s on this input, {scores[0]:.1f} dB")
        return self._int8

    def load_default(self) -> Callable[[], Any]:
        """``anime_core.load(model, weights=FILE)(pil_image)``: default backend and precision."""
        import tempfile

        import anime_core
        from anime_core.inference import io
        from anime_core.weights.files import save_native

        if self.image is None:
            raise RuntimeError("load-default times image models")
        folder = Path(tempfile.mkdtemp(prefix="bench-speed-"))
        weights = save_native(folder / "g.safetensors", {"generator": self.generator}, self.model_name,
                              self.options)
        pipe = anime_core.load(self.model_name, weights=weights, device=str(self.device))
        image = io.to_image(self.image.float() / 255)
        self.load_note = f"{pipe.precision} on {getattr(pipe.generator, 'backend', 'torch')}"
        return lambda: pipe(image)

    def openvino(self, name: str) -> tuple[Callable[[], Any], str]:
        import numpy as np
        import openvino as ov

        core = ov.Core()
        graph, note = (self.int8_graph() if name == "ov-int8" else (self.onnx_graph(), ""))
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if name == "openvino-f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = core.compile_model(core.read_model(graph), "CPU", config)
        request = compiled.create_infer_request()
        tensor = ov.Tensor(np.ascontiguousarray(self.args[0].cpu().numpy()))
        note = f"{note}, {compiled.get_property('INFERENCE_PRECISION_HINT')}".strip(", ")
        return (lambda: request.infer([tensor])[0]), note

    def method(self, name: str) -> tuple[Callable[[], Any], str]:
        """The callable for ``name`` and a note (set-up time, when it matters)."""
        g, args = self.generator, self.args
        if name in CPU_ONLY and self.device.type != "cpu":
            raise RuntimeError("a CPU path")
        if name == "eager":
            def eager() -> Any:
                with torch.no_grad():
                    return g(*args)
            return eager, ""
        if name in ("openvino-f32", "openvino", "ov-int8"):
            return self.openvino(name)
        if name == "load-default":
            fn = self.load_default()
            return (lambda: fn()), self.load_note
        if name in ("pipeline", "pipeline-plain", "pipeline-bf16"):
            pipe = {"pipeline": self.pipe, "pipeline-plain": self.plain, "pipeline-bf16": self.bf16}[name]
            if self.image is None:
                return (lambda: pipe.decode_latents(args[0])), ""
            return (lambda: pipe.translate(self.image)), ""
        if name in ("onnxruntime", "ort-default", "ort-int8"):
            import onnxruntime as ort

            # the tuned session is the pipeline's own (one memory arena fewer: 1024 px cases need GiBs each)
            session = self.ort_pipe().generator.session
            note = f"export+verify {self.export_s:.0f} s"
            if name == "ort-default":
                session = ort.InferenceSession(self.onnx_graph(), ort.SessionOptions(),
                                               providers=["CPUExecutionProvider"])
            if name == "ort-int8":
                from anime_core.inference.backends import onnx_runtime

                graph, extra = self.int8_graph()
                session = ort.InferenceSession(graph, onnx_runtime.session_options(self.threads),
                                               providers=["CPUExecutionProvider"])
                note += f", {extra}"
            feed = {i.name: a.cpu().numpy() for i, a in zip(session.get_inputs(), args)}
            return (lambda: session.run(None, feed)), note
        if name == "pipeline-ort":
            pipe = self.ort_pipe()
            if self.image is None:
                return (lambda: pipe.decode_latents(args[0])), ""
            return (lambda: pipe.translate(self.image)), ""
        if name == "jit-frozen":
            start = time.perf_counter()
            with torch.no_grad():
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(g, args).eval()))
                frozen(*args)

            def jit() -> Any:
                with torch.no_grad():
                    return frozen(*args)
            return jit, f"trace+freeze {time.perf_counter() - start:.0f} s"
        if name == "channels-last":
            net = copy.deepcopy(g).to(memory_format=torch.channels_last)
            cl = tuple(a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args)

            def nhwc() -> Any:
                with torch.no_grad():
                    return net(*cl)
            return nhwc, ""
        if name == "compile":
            compiled = torch.compile(g, dynamic=False)
            start = time.perf_counter()
            with torch.no_grad():
                compiled(*args)

            def comp() -> Any:
                with torch.no_grad():
                    return compiled(*args)
            return comp, f"compile {time.perf_counter() - start:.0f} s"
        raise SystemExit(f"unknown method {name}; use {', '.join(METHODS)}")


def run_case(case: Case, methods: list[str], reps: int, peak: float) -> list[dict]:
    device = case.device
    eager_fn, _ = case.method("eager")
    flops = count_flops(eager_fn)
    load_before = os.getloadavg()[0]
    fns: dict[str, Callable[[], Any]] = {}
    notes: dict[str, str] = {}
    first: dict[str, float] = {}
    diffs: dict[str, float] = {}
    reference = None
    for m in methods:
        try:
            fns[m], notes[m] = case.method(m)
            first[m], _, out = _timed_both(fns[m], device)
            image = case.image01(out, m)
            if reference is None:
                reference = image
            diffs[m] = float((image - reference).abs().max()) * 255
        except Exception as exc:  # a path that cannot run this generator is a result too
            notes[m] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            fns.pop(m, None)
    times: dict[str, list[float]] = {m: [] for m in fns}
    cpu: dict[str, list[float]] = {m: [] for m in fns}
    for _ in range(reps):
        for m, fn in fns.items():
            wall, used, _ = _timed_both(fn, device)
            times[m].append(wall)
            cpu[m].append(used)
    load_after = os.getloadavg()[0]
    base = min(times["eager"]) if times.get("eager") else None
    base_cpu = min(cpu["eager"]) if cpu.get("eager") else None
    rows = []
    for m in methods:
        t = times.get(m)
        row = {"model": case.name, "size": case.size, "method": m, "gflop": flops / 1e9, "note": notes.get(m, ""),
               "load": f"{load_before:.1f}-{load_after:.1f}"}
        if t:
            best = min(t)
            row.update(min_s=best, median_s=statistics.median(t), cpu_s=min(cpu[m]), gflops=flops / best / 1e9,
                       of_peak=flops / best / 1e9 / peak, vs_eager=best / base if base else float("nan"),
                       cpu_vs_eager=min(cpu[m]) / base_cpu if base_cpu else float("nan"), first_s=first[m],
                       diff=diffs[m])
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--reps", type=int, default=3, help="timed rounds after one warm-up (min and median shown)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="the pipeline paths' precision (cast nets on the CPU, autocast on a GPU); eager stays fp32, "
                         "the reference")
    ap.add_argument("--photo", type=Path, help="time this photo (centre-cropped square) instead of random pixels")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("# --device cuda: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "no GPU figure measured")
        return
    warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices, once per call
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    methods = args.methods.split(",")
    if "eager" not in methods:
        methods.insert(0, "eager")
    peak_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    peak = matmul_gflops(device, peak_dtype if device.type == "cuda" else torch.float32)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    peak_name = args.precision if device.type == "cuda" else "fp32"
    print(f"# {platform.machine()}, {where}, torch {torch.__version__}, {args.threads} threads, pipeline precision "
          f"{args.precision}, load average {os.getloadavg()[0]:.1f}; {peak_name} matmul: {peak:.0f} GFLOP/s\n")
    with contextlib.suppress(ImportError):
        import onnxruntime

        print(f"# onnxruntime {onnxruntime.__version__}\n")
    with contextlib.suppress(ImportError):
        import openvino

        print(f"# openvino {openvino.__version__}\n")
    print("| model | size | GFLOP | path | min s | median s | CPU s | CPU vs eager | first s | GFLOP/s | % of matmul "
          "| vs eager | max diff /255 | load | note |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    summary: list[str] = []
    for name in args.models.split(","):
        sizes = [0] if MODELS[name][0] == "dcgan" else [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            gc.collect()  # the previous case's nets, sessions and outputs
            case = Case(name, size, args.threads, device, args.precision, args.photo)
            rows = run_case(case, methods, args.reps, peak)
            for r in rows:
                if "min_s" in r:
                    cells = (f"{r['min_s']:.3f} | {r['median_s']:.3f} | {r['cpu_s']:.3f} | {r['cpu_vs_eager']:.2f}x | "
                             f"{r['first_s']:.2f} | {r['gflops']:.0f} | {100 * r['of_peak']:.0f}% | "
                             f"{r['vs_eager']:.2f}x | {r['diff']:.2f}")
                else:
                    cells = "- | - | - | - | - | - | - | - | -"
                print(f"| {name} | {size or '64x64 x64'} | {r['gflop']:.1f} | {r['method']} | {cells} | "
                      f"{r['load']} | {r['note']} |", flush=True)
            summary.append(ratios(rows))
            del case
    print("\n" + "\n".join(line for line in summary if line))


def ratios(rows: list[dict]) -> str:
    """The issue-26 bars: load-default / openvino (its default precision) and pipeline / eager, on median times."""
    med = {r["method"]: r["median_s"] for r in rows if "median_s" in r}
    parts = []
    if "load-default" in med and "openvino" in med:
        parts.append(f"load-default / openvino default {med['load-default'] / med['openvino']:.2f}x (bar 1.1)")
    if "load-default" in med and "openvino-f32" in med:
        parts.append(f"load-default / openvino f32 {med['load-default'] / med['openvino-f32']:.2f}x")
    if "pipeline" in med and "eager" in med:
        parts.append(f"pipeline fp32 / eager {med['pipeline'] / med['eager']:.2f}x (bar 0.8)")
    if "pipeline-bf16" in med and "openvino" in med:
        parts.append(f"pipeline bf16 / openvino default {med['pipeline-bf16'] / med['openvino']:.2f}x")
    if "ov-int8" in med and "openvino" in med:
        parts.append(f"openvino int8 / openvino default {med['ov-int8'] / med['openvino']:.2f}x")
    return f"# {rows[0]['model']} {rows[0]['size']}: " + "; ".join(parts) if parts else ""


if __name__ == "__main__":
    from anime_core.inference.speed import application

    with application():  # measured as 'anime run' runs: the CLI's process-wide speed settings on
        main()
