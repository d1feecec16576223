"""Inference speed of the dcgan plugin's two models (issue "Speed").

- ``dcgan``: images/s of the default generator (64x64, width 64, 3.58 M parameters) at batch
  ``--batch`` (fp32, ``torch.inference_mode``, eval-mode BatchNorm), timing the generator alone.
- ``pixelsake-sr``: ms per 128x128 output (a 32x32 input through the default 16-block enhancer,
  batch 1), timing the generator alone and the whole ``SRPipeline.forward`` (to/from [0, 1]).

Median of ``--repeats`` after one warm-up. CPU by default (threads: torch's default, printed);
``--device cuda`` for a GPU. The machine's load average is printed: on a shared CPU it matters.

    .venv/bin/python benchmarks/bench_dcgan.py [--batch 64] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def median_s(fn: Callable[[], object], repeats: int, sync: bool) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from anime_plugin_dcgan.pipeline import SRPipeline

    import anime_core
    from anime_core.registry import get_registry

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if sync else (platform.processor() or platform.machine())
    print(f"device {name}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")

    g = anime_core.build("dcgan", "generator").eval().to(dev)
    z = torch.randn(a.batch, g.latent_dim, device=dev)
    with torch.inference_mode():
        t = median_s(lambda: g(z), a.repeats, sync)
    print(f"dcgan 64x64: batch {a.batch}: {a.batch / t:.1f} images/s ({1000 * t / a.batch:.2f} ms/image)")

    sr = anime_core.build("pixelsake-sr", "generator").eval().to(dev)
    x = torch.rand(1, 3, 32, 32, device=dev)
    with torch.inference_mode():
        t_net = median_s(lambda: sr(x * 2 - 1), a.repeats, sync)
    reg = get_registry()
    pipe = SRPipeline(reg.model("pixelsake-sr"), {"generator": sr}, device=a.device)
    t_pipe = median_s(lambda: pipe.forward(x), a.repeats, sync)
    n = sum(p.numel() for p in sr.parameters())
    print(f"pixelsake-sr 32->128 ({n / 1e6:.2f} M params): generator {1000 * t_net:.1f} ms, "
          f"pipeline {1000 * t_pipe:.1f} ms per 128x128 output")


if __name__ == "__main__":
    main()
