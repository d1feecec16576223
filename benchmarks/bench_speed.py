"""Inference speed of every generator against the machine's limit, in one process and one run.

For each generator and size it times, interleaved round by round so that load changes hit every
path alike:

- ``eager``: the plain reference, ``generator(x)`` under ``torch.no_grad`` on a prepared tensor;
- ``pipeline``: our default path, ``TranslatePipeline.translate`` on a uint8 image (value
  mapping, stride padding, cropping, the copy back to the CPU included) or ``decode_latents``;
- ``onnxruntime``: ``session.run`` on the verified export with tuned session options (every
  graph optimisation, intra-op threads = torch's) and ``ort-default`` with ONNX Runtime's defaults;
- ``pipeline-ort``: our pipeline with the ONNX Runtime generator (``anime run --backend onnxruntime``);
- ``jit-frozen``: ``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference`` (oneDNN fusions);
- ``channels-last``: eager with NHWC weights and input;
- ``compile``: ``torch.compile`` (inductor) after its warm-up, whose time is printed.

The default paths are eager, pipeline, onnxruntime, pipeline-ort and channels-last; add
ort-default, jit-frozen and compile with ``--methods`` (compile costs minutes per size on two
cores). It prints achieved GFLOP/s (FLOPs counted by ``torch.utils.flop_counter`` on the eager
forward) against the machine's measured fp32 matmul GFLOP/s (2048x2048), the load average, each
path's time relative to eager, and the process CPU seconds of the fastest call (with
``--threads 1`` the figure that other jobs on a shared machine disturb least). Weights are
random: speed does not depend on their values.

    python benchmarks/bench_speed.py                                  # every generator, 256/512/1024
    python benchmarks/bench_speed.py --models animegan-v2 --sizes 512 --reps 7
    python benchmarks/bench_speed.py --methods eager,pipeline,onnxruntime --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
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
METHODS = ["eager", "pipeline", "onnxruntime", "ort-default", "pipeline-ort", "jit-frozen", "channels-last",
           "compile"]
DEFAULT_METHODS = ["eager", "pipeline", "onnxruntime", "pipeline-ort", "channels-last"]


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timed_both(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, process CPU) seconds: with one thread the CPU time barely depends on other jobs' load."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def count_flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class Case:
    """One generator at one size: its pipeline, inputs, and a callable per method."""

    def __init__(self, name: str, size: int, threads: int) -> None:
        from anime_core.api import pipeline_class
        from anime_core.registry import get_registry

        model, options = MODELS[name]
        reg = get_registry()
        spec = reg.model(model)
        torch.manual_seed(0)
        self.generator = reg.build(spec, "generator", **options).eval().requires_grad_(False)
        self.pipe = pipeline_class(spec)(spec, {"generator": self.generator}, device="cpu")
        self.name, self.size, self.threads = name, size, threads
        if self.pipe.kind == "generate":
            self.image = None
            self.args: tuple[torch.Tensor, ...] = (self.pipe.latents(64, 0),)
        else:
            side = size // int(getattr(self.generator, "scale", 1) or 1)
            self.image = torch.randint(0, 256, (3, side, side), dtype=torch.uint8)
            x = self.image[None].float() / 255
            self.args = (self.pipe.preprocess(x).contiguous(),)
        self.graph: bytes | None = None
        self._ort_pipe: Any = None
        self.export_s = 0.0

    def onnx_graph(self) -> bytes:
        if self.graph is None:
            from anime_core.inference import onnx

            start = time.perf_counter()
            proto, _ = onnx.build_verified(self.pipe)
            self.graph = proto.SerializeToString()
            self.export_s = time.perf_counter() - start
        return self.graph

    def ort_pipe(self) -> Any:
        """Our pipeline around the tuned ONNX Runtime session (``anime run --backend onnxruntime``)."""
        if self._ort_pipe is None:
            from anime_core.inference import onnx

            self._ort_pipe = onnx.onnx_pipeline(type(self.pipe), self.pipe.spec, self.onnx_graph(), "cpu",
                                                threads=self.threads)
        return self._ort_pipe

    def method(self, name: str) -> tuple[Callable[[], Any], str]:
        """The callable for ``name`` and a note (set-up time, when it matters)."""
        g, args = self.generator, self.args
        if name == "eager":
            def eager() -> Any:
                with torch.no_grad():
                    return g(*args)
            return eager, ""
        if name == "pipeline":
            if self.image is None:
                return (lambda: self.pipe.decode_latents(args[0])), ""
            return (lambda: self.pipe.translate(self.image)), ""
        if name in ("onnxruntime", "ort-default"):
            import onnxruntime as ort

            # the tuned session is the pipeline's own (one memory arena fewer: 1024 px cases need GiBs each)
            session = self.ort_pipe().generator.session
            if name == "ort-default":
                session = ort.InferenceSession(self.onnx_graph(), ort.SessionOptions(),
                                               providers=["CPUExecutionProvider"])
            feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
            return (lambda: session.run(None, feed)), f"export+verify {self.export_s:.0f} s"
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
            return jit, f"trace+freeze+first call {time.perf_counter() - start:.0f} s"
        if name == "channels-last":
            import copy

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
            return comp, f"compile+first call {time.perf_counter() - start:.0f} s"
        raise SystemExit(f"unknown method {name}; use {', '.join(METHODS)}")


def run_case(name: str, size: int, methods: list[str], reps: int, threads: int, peak: float) -> list[dict]:
    case = Case(name, size, threads)
    eager_fn, _ = case.method("eager")
    flops = count_flops(eager_fn)
    load_before = os.getloadavg()[0]
    fns: dict[str, Callable[[], Any]] = {}
    notes: dict[str, str] = {}
    for m in methods:
        try:
            fns[m], notes[m] = case.method(m)
            fns[m]()  # warm-up
        except Exception as exc:  # a path that cannot run this generator is a result too
            notes[m] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            fns.pop(m, None)
    times: dict[str, list[float]] = {m: [] for m in fns}
    cpu: dict[str, list[float]] = {m: [] for m in fns}
    for _ in range(reps):
        for m, fn in fns.items():
            wall, used = _timed_both(fn)
            times[m].append(wall)
            cpu[m].append(used)
    load_after = os.getloadavg()[0]
    base = min(times["eager"]) if times.get("eager") else None
    rows = []
    for m in methods:
        t = times.get(m)
        row = {"model": name, "size": size, "method": m, "gflop": flops / 1e9, "note": notes.get(m, ""),
               "load": f"{load_before:.1f}-{load_after:.1f}"}
        if t:
            best = min(t)
            row.update(min_s=best, median_s=statistics.median(t), cpu_s=min(cpu[m]), gflops=flops / best / 1e9,
                       of_peak=flops / best / 1e9 / peak, vs_eager=best / base if base else float("nan"))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--reps", type=int, default=3, help="timed rounds after one warm-up (min and median shown)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices, once per call
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    if "eager" not in methods:
        methods.insert(0, "eager")
    peak = matmul_gflops()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}; fp32 2048x2048 matmul: {peak:.0f} GFLOP/s\n")
    with contextlib.suppress(ImportError):
        import onnxruntime

        print(f"# onnxruntime {onnxruntime.__version__}\n")
    print("| model | size | GFLOP | path | min s | median s | CPU s | GFLOP/s | % of matmul | vs eager | load | note |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for name in args.models.split(","):
        sizes = [0] if MODELS[name][0] == "dcgan" else [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            gc.collect()  # the previous case's nets, sessions and outputs
            for r in run_case(name, size, methods, args.reps, args.threads, peak):
                if "min_s" in r:
                    cells = (f"{r['min_s']:.3f} | {r['median_s']:.3f} | {r['cpu_s']:.3f} | {r['gflops']:.0f} | "
                             f"{100 * r['of_peak']:.0f}% | {r['vs_eager']:.2f}x")
                else:
                    cells = "- | - | - | - | - | -"
                print(f"| {name} | {size or '64x64 x64'} | {r['gflop']:.1f} | {r['method']} | {cells} | "
                      f"{r['load']} | {r['note']} |", flush=True)


if __name__ == "__main__":
    main()
