"""CPU speed and memory of the cyclegan generator variants (paper Tables 2 and 3).

For each of the paper's eight variants (plus the PatchGAN discriminator) a fresh subprocess
builds the net at full width (width 64), runs inference-mode fp32 forwards of one image at 256x256
and 512x512, and reports the parameter count, the median forward time and the process's peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: model + the 512x512 forward,
since a fresh process starts from the interpreter's baseline). ``--unchunked`` forces the
unchunked attention (the full (H*W)^2 score matrix at once) for comparison.

    .venv/bin/python benchmarks/bench_cyclegan.py [--repeats 3] [--sizes 256 512] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

VARIANTS = {
    "unet": dict(arch="unet", attention="none"),
    "unet-attention-down": dict(arch="unet", attention="down"),
    "unet-attention-up": dict(arch="unet", attention="up"),
    "unet-attention-both": dict(arch="unet", attention="both"),
    "resnet9": dict(arch="resnet", n_blocks=9, attention="none"),
    "resnet9-attention": dict(arch="resnet", n_blocks=9, attention="blocks"),
    "resnet8": dict(arch="resnet", n_blocks=8, attention="none"),
    "resnet8-attention": dict(arch="resnet", n_blocks=8, attention="blocks"),
    "patchgan (D)": None,
}

CHILD = r"""
import json, resource, statistics, sys, time
import torch
import anime_core
from anime_plugin_cyclegan.discriminator import build_discriminator
opts, sizes, repeats, unchunked = json.loads(sys.argv[1])
torch.manual_seed(0)
net = (anime_core.build("cyclegan", **opts) if opts is not None else build_discriminator()).eval()
params = sum(p.numel() for p in net.parameters())
rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if unchunked:
    from anime_plugin_cyclegan.attention import SelfAttention
    SelfAttention.max_scores = 0
out = {"params": params, "rss_model_mib": rss_model / 1024, "ms": {}}
with torch.inference_mode():
    for s in sizes:
        x = torch.rand(1, 3, s, s) * 2 - 1
        net(x)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter(); net(x); times.append(time.perf_counter() - t)
        out["ms"][s] = 1000 * statistics.median(times)
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(opts: dict | None, sizes: list[int], repeats: int, unchunked: bool) -> dict:
    args = json.dumps([opts, sizes, repeats, unchunked])
    res = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--unchunked", action="store_true", help="attention without query chunking")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}, fp32, batch 1, inference_mode"
          f"{', unchunked attention' if a.unchunked else ''}")
    cols = " | ".join(f"{s}x{s} ms" for s in a.sizes)
    print(f"| variant | params | {cols} | peak RSS MiB (model only) |")
    print("|---|---:|" + "---:|" * len(a.sizes) + "---:|")
    results = {}
    for name in a.variants:
        r = run(VARIANTS[name], a.sizes, a.repeats, a.unchunked)
        results[name] = r
        if "error" in r:
            print(f"| {name} | error: {r['error']} |")
            continue
        times = " | ".join(f"{r['ms'][str(s)]:.0f}" for s in a.sizes)
        print(f"| {name} | {r['params'] / 1e6:.3f} M | {times} | {r['peak_rss_mib']:.0f} ({r['rss_model_mib']:.0f}) |",
              flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
