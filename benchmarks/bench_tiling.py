"""Faithful tiling on huge images: time, passes and peak memory at 4096x4096 and 8192x8192 (issue 18).

Each case runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own; the child also
reports its RSS just before translating (interpreter, torch, model, decoded image), so the growth
that tiling causes is visible. The input is a real photo (``/work/shared/photos`` by default)
cropped square and resized to the size; weights are random (the speed and memory of a network do
not depend on its values), so this runs offline. ``--compare`` also runs the untiled forward at
the given sizes and reports the difference on the 8-bit output (and its own time and memory).

    python benchmarks/bench_tiling.py                                  # animegan v2, 4096 and 8192, CPU
    python benchmarks/bench_tiling.py --sizes 2048 --compare           # tiled vs untiled
    python benchmarks/bench_tiling.py --case cyclegan:arch=resnet --tile 512
    python benchmarks/bench_tiling.py --sizes 2048 --aspect --compare --threads 2 --precision bf16 --repeat 2
    python benchmarks/bench_tiling.py --sizes 2048 --aspect --compare --threads 2 --backend openvino

Each child first translates a 64 px image (the one-off set-up a second image finds done). With
``--backend`` the export is made (or found in ``--cache``) by a child of its own before the measured ones,
so no peak includes it; OpenVINO runs its default precision on this CPU unless ``--precision`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

PHOTOS = next((p for p in (Path(__file__).resolve().parents[1].parent / "shared" / "photos",
                            Path("/work/shared/photos")) if p.is_dir()), Path("photos"))

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
import torch
from PIL import Image
from anime_core.inference import io
model, opts, size, tile, photo, out, threads, aspect, precision, backend, cache = json.loads(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.registry import get_registry
reg = get_registry()
spec = reg.model(model)
gen = reg.build(spec, "generator", **opts)
pipe = (spec.pipeline_class() or TranslatePipeline)(spec, {"generator": gen}, device="cpu",
                                                    precision=precision if backend == "torch" and precision else "fp32")
if backend != "torch":
    from pathlib import Path
    from anime_core.inference.backends import get
    extra = {}
    if backend == "openvino":
        from anime_core.inference.backends.openvino import native_precision
        extra["precision"] = precision or native_precision()
    pipe = get(backend).from_torch(pipe, type(pipe), "cpu", cache=Path(cache), threads=threads or 2, **extra)
from anime_core.inference import speed
with speed.application():
    pipe.translate(torch.zeros(3, 64, 64, dtype=torch.uint8), 0)  # the one-off set-up
img = Image.open(photo).convert("RGB")
if aspect:  # the long side to ``size`` (0: the photo at full size)
    if size:
        k = size / max(img.size)
        img = img.resize((round(img.width * k), round(img.height * k)), Image.Resampling.LANCZOS)
else:
    side = min(img.size)
    img = img.crop(((img.width - side) // 2, (img.height - side) // 2, (img.width + side) // 2,
                    (img.height + side) // 2)).resize((size, size), Image.Resampling.LANCZOS)
x = io.to_tensor(img)
del img
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
load0 = os.getloadavg()[0]
t = time.perf_counter()
with speed.application():  # the process settings of the anime command line (heap reuse, one heap)
    y = pipe.translate(x, tile)
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
report = pipe.last_tiling
if out:
    np.save(out, (y.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
print(json.dumps({"seconds": seconds, "size": list(x.shape[-2:]), "segments": report.segments if report else 0,
                  "cost": report.cost if report else 1.0, "rss_before_mb": rss0, "rss_mb": rss,
                  "load": [load0, os.getloadavg()[0]],
                  "threads": torch.get_num_threads(), "passes": report.passes if report else 0,
                  "tiles": report.tiles if report else 1, "halo": report.halo if report else 0,
                  "notes": report.notes if report else []}))
"""


def run_case(model: str, opts: dict, size: int, tile: int, photo: Path, out: str | None, threads: int,
             aspect: bool = False, precision: str | None = None, backend: str = "torch", cache: str = "") -> dict:
    payload = json.dumps([model, opts, size, tile, str(photo), out, threads, aspect, precision, backend, cache])
    proc = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _case(text: str) -> tuple[str, dict]:
    model, _, rest = text.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return model, opts


def _diff(a: str, b: str) -> tuple[float, float]:
    import numpy as np

    d = np.abs(np.load(a).astype(np.int16) - np.load(b).astype(np.int16))
    return float(d.mean()), float(np.percentile(d, 99.9)), float(d[:, -16:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="animegan:variant=v2", help="MODEL[:key=value,...] generator options")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--photo", type=Path, default=None, help="default: the first photo in /work/shared/photos")
    parser.add_argument("--compare", action="store_true", help="also run untiled and compare the 8-bit outputs")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--aspect", action="store_true",
                        help="keep the photo's aspect (SIZE is the long side; 0: the photo at full size)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved tiled/untiled runs per size")
    parser.add_argument("--precision", help="fp32, bf16 or fp16 (default: fp32 on torch, the native precision on "
                        "OpenVINO)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "openvino"))
    parser.add_argument("--cache", type=Path, help="export cache folder (default: a temporary one)")
    args = parser.parse_args()
    photo = args.photo or sorted(PHOTOS.glob("*.jpg"))[0]
    model, opts = _case(args.case)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {model} {opts}, "
          f"photo {photo.name}, tile {args.tile}, backend {args.backend}, precision {args.precision or 'default'}")
    print("| size | mode | time | segments | tiles (px cost) | halo | RSS before | peak RSS | load (1 min) | "
          "diff mean / p99.9 (vs the tiled run above) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(args.cache or Path(tmp) / "exports")
        case = {"threads": args.threads, "aspect": args.aspect, "precision": args.precision,
                "backend": args.backend, "cache": cache}
        if args.backend != "torch":  # the export, outside every measured child
            made = run_case(model, opts, 256, 0, photo, None, **case)
            if "error" in made:
                sys.exit(f"the {args.backend} export failed: {made['error']}")
        for size in args.sizes:
            outs = {}
            runs = [("tiled", args.tile)] + ([("untiled", 0)] if args.compare else [])
            for mode, tile in runs * args.repeat:
                outs[mode] = str(Path(tmp) / f"{mode}{size}.npy") if args.compare else None
                r = run_case(model, opts, size, tile, photo, outs[mode], **case)
                if "error" in r:
                    print(f"| {size} | {mode} | {r['error']} |")
                    outs[mode] = None
                    continue
                diff = ""
                if mode == "untiled" and outs.get("tiled") and outs[mode]:
                    mean, p999, bottom = _diff(outs["tiled"], outs[mode])
                    diff = f"{mean:.3f} / {p999:.0f} (/255; bottom 16 rows {bottom:.3f})"
                notes = f" ({'; '.join(r['notes'])})" if r["notes"] else ""
                hw = "x".join(map(str, r["size"][::-1]))
                print(f"| {hw} | {mode}{notes} | {r['seconds']:.1f} s | {r['segments']} | "
                      f"{r['tiles']} ({r['cost']:.2f}) | "
                      f"{r['halo']} | {r['rss_before_mb']:.0f} MB | {r['rss_mb']:.0f} MB | "
                      f"{r['load'][0]:.1f} -> {r['load'][1]:.1f} ({r['threads']} threads) | {diff} |", flush=True)


if __name__ == "__main__":
    main()
