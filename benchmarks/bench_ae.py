"""Per-image inference time of the ae autoencoder variants (paper II.D; Table IV reports timings).

For each variant (default widths 64/128/256, 256 encoding filters) the script times, at each size,
the generator alone and the whole ``AEPipeline.forward`` (RGB -> L* -> net -> Lab(L*, a*b*) -> RGB,
with ``strength`` 1), fp32, batch 1, ``torch.inference_mode``, best and median of ``--repeats``
after one warm-up (the best is the steadier figure on a shared machine). CPU by default (torch's
default thread count, printed); ``--device cuda`` for a GPU.

    .venv/bin/python benchmarks/bench_ae.py [--sizes 256 512] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def timings_ms(fn, x: torch.Tensor, repeats: int, sync: bool) -> tuple[float, float]:
    fn(x)
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(x)
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1000 * min(times), 1000 * statistics.median(times)


def main() -> None:
    from anime_plugin_ae.generator import VARIANTS, build_generator
    from anime_plugin_ae.pipeline import AEPipeline

    from anime_core.registry import get_registry

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if sync else (platform.processor() or platform.machine())
    print(f"# {name}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load {os.getloadavg()[0]:.1f}, fp32, batch 1, inference_mode, best and median of {a.repeats}")
    cols = " | ".join(f"{s}x{s}: net / pipeline ms, min (median)" for s in a.sizes)
    print(f"| variant | params | {cols} |")
    print("|---|---:|" + "---:|" * len(a.sizes))
    spec = get_registry().model("ae")
    for variant in a.variants:
        torch.manual_seed(0)
        net = build_generator(variant).eval().to(dev)
        pipe = AEPipeline(spec, {"generator": net}, device=dev)
        params = sum(p.numel() for p in net.parameters())
        cells = []
        with torch.inference_mode():
            for s in a.sizes:
                x = torch.rand(1, 3, s, s, device=dev)
                net_in = pipe.preprocess(x)
                t_net = timings_ms(net, net_in, a.repeats, sync)
                t_pipe = timings_ms(pipe.forward, x, a.repeats, sync)
                cells.append(f"{t_net[0]:.0f} ({t_net[1]:.0f}) / {t_pipe[0]:.0f} ({t_pipe[1]:.0f})")
        print(f"| {variant} | {params / 1e6:.2f} M | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
