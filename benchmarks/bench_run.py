"""Time `anime run` per image at 256, 512 and 1024 px, and peak memory, for translate models.

Each case runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own. Weights are
random (the speed of a network does not depend on its values) and written as a native file, so
this runs offline. Prints a Markdown table to paste into benchmarks/RESULTS.md.

    python benchmarks/bench_run.py                       # animegan v1 and v2 on the CPU
    python benchmarks/bench_run.py --device cuda --precision bf16
    python benchmarks/bench_run.py --case animegan:variant=v2 --sizes 4096 --tile 1024
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from PIL import Image
import anime_core
from anime_core.inference import io
from anime_core.weights import save_native
model, opts, size, device, precision, tile, reps, wpath, warmup = json.loads(sys.argv[1])
gen = anime_core.build(model, "generator", **opts)
save_native(wpath, {"generator": gen}, model, opts)
pipe = anime_core.load(model, weights=wpath, device=device, precision=precision)
img = Image.effect_mandelbrot((size, size), (-2, -1.5, 1, 1.5), 60).convert("RGB")
x = io.to_tensor(img)
if warmup:
    pipe.translate(x, tile)
times = []
for _ in range(reps):
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    pipe.translate(x, tile)
    if device == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"median_s": statistics.median(times), "min_s": min(times), "rss_mb": rss}))
"""


def run_case(
    model: str, opts: dict, size: int, device: str, precision: str, tile: int | None, reps: int, warmup: bool = True
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "w.safetensors")
        payload = json.dumps([model, opts, size, device, precision, tile, reps, weights, warmup])
        out = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_case(text: str) -> tuple[str, dict]:
    model, _, rest = text.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key] = int(value) if value.isdigit() else value
    return model, opts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", help="MODEL[:opt=value,...]; default animegan v1 and v2")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-warmup", action="store_true", help="time the first pass too (huge images)")
    args = ap.parse_args()
    cases = [parse_case(c) for c in (args.case or ["animegan:variant=v1", "animegan:variant=v2"])]
    import torch

    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'CPU'}"
    print(
        f"device: {args.device} ({where}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"precision {args.precision}, tile {args.tile}, median of {args.reps}"
        f"{'' if args.no_warmup else ' after a warm-up'}\n"
    )
    print("| model | options | size | median s/image | peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for model, opts in cases:
        for size in map(int, args.sizes.split(",")):
            r = run_case(model, opts, size, args.device, args.precision, args.tile, args.reps, not args.no_warmup)
            if "error" in r:
                print(f"| {model} | {opts} | {size} | error: {r['error']} | |")
            else:
                print(f"| {model} | {opts} | {size} | {r['median_s']:.3f} | {r['rss_mb']:.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
