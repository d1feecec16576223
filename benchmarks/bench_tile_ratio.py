"""Tiled vs untiled time, side by side in one process (issue 26): interleaved runs, median of N.

A synthetic scene (tests/helpers.py's ``make_image``) or a shared photo, AnimeGAN v2 with random
weights. The 8-bit difference of the tiled output is reported too. Peak memory needs a process per
case: see bench_tiling.py.

    python benchmarks/bench_tile_ratio.py --size 768 1024 --tile 256 --repeat 3
    python benchmarks/bench_tile_ratio.py --photo 0 --long-side 2048 --tile 1024
    python benchmarks/bench_tile_ratio.py --size 768 1024 --tile 256 --backend openvino

``--backend onnxruntime|openvino``: both runs on that backend (the tiles run the cut export's
segments there, ``anime_core.inference.backends.onnx_segments``); the exports are made before timing,
in ``--cache`` (default: a temporary folder). OpenVINO runs in its default precision on this CPU
unless ``--precision`` says otherwise; torch runs ``--precision`` (default fp32).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = next((p for p in (ROOT.parent / "shared" / "photos", Path("/work/shared/photos")) if p.is_dir()),
              Path("photos"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="a synthetic scene of this size")
    parser.add_argument("--photo", type=int, help="index of a shared photo (sorted names)")
    parser.add_argument("--long-side", type=int, default=0, help="resize the photo's long side (0: full size)")
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", default="animegan:variant=v2")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "openvino"))
    parser.add_argument("--precision", help="fp32, bf16 or fp16 (default: fp32 on torch and ONNX Runtime, the native "
                        "precision here on OpenVINO)")
    parser.add_argument("--cache", type=Path, help="export cache folder (default: a temporary one)")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from anime_core.inference import io
    from anime_core.inference.pipeline import TranslatePipeline
    from anime_core.registry import get_registry

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _, rest = args.case.partition(":")
    opts = dict(item.split("=") for item in rest.split(",") if item)
    reg = get_registry()
    spec = reg.model(model)
    precision = args.precision if args.backend == "torch" and args.precision else "fp32"
    pipe = (spec.pipeline_class() or TranslatePipeline)(spec, {"generator": reg.build(model, **opts)}, device="cpu",
                                                        precision=precision)
    if args.backend != "torch":
        import tempfile

        from anime_core.inference.backends import get

        options = {}
        if args.backend == "openvino":
            from anime_core.inference.backends.openvino import native_precision

            precision = options["precision"] = args.precision or native_precision()
        cache = args.cache or Path(tempfile.mkdtemp(prefix="anime-onnx-"))
        pipe = get(args.backend).from_torch(pipe, type(pipe), "cpu", cache=cache, threads=args.threads, **options)
    if args.photo is not None:
        img = Image.open(sorted(PHOTOS.glob("*.jpg"))[args.photo]).convert("RGB")
        if args.long_side:
            k = args.long_side / max(img.size)
            img = img.resize((round(img.width * k), round(img.height * k)), Image.Resampling.LANCZOS)
        what = f"photo {args.photo} at {img.width}x{img.height}"
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers import make_image

        img = make_image(tuple(args.size), 7)
        what = f"synthetic scene {img.width}x{img.height}"
    x = io.to_tensor(img)
    pipe.translate(x[:, :64, :64], 0)  # one-off set-up
    pipe.tiling_cost(x.shape[1], x.shape[2], args.tile)  # the plan (shapes only) is made once per size
    source = getattr(pipe, "tile_source", None)
    if source is not None:  # the cut export (and its sessions) before timing; one run of each shape compiles
        source.net(pipe._tile_plan(x.shape[1], x.shape[2], args.tile))
        pipe.translate(x, args.tile)
        pipe.translate(x, 0)
    times: dict[str, list[float]] = {"untiled": [], "tiled": []}
    outs = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for mode, tile in (("untiled", 0), ("tiled", args.tile)):
            start = time.perf_counter()
            outs[mode] = pipe.translate(x, tile)
            times[mode].append(time.perf_counter() - start)
            loads.append(os.getloadavg()[0])
    report = pipe.last_tiling
    diff = ((outs["tiled"].clamp(0, 1) * 255).round() - (outs["untiled"].clamp(0, 1) * 255).round()).abs()
    flat = diff.flatten()
    p999 = float(flat.kthvalue(int(0.999 * flat.numel())).values)
    u, t = statistics.median(times["untiled"]), statistics.median(times["tiled"])
    print(f"{args.case}, {what}, --tile {args.tile}, {args.threads} threads, median of {args.repeat} interleaved, "
          f"backend {args.backend} ({precision})")
    print(f"untiled {u:.1f} s {[round(v, 1) for v in times['untiled']]}, tiled {t:.1f} s "
          f"{[round(v, 1) for v in times['tiled']]}: {t / u:.2f}x; {report.tiles} tiles, {report.segments} segments, "
          f"halo {report.halo}, pixel cost {report.cost:.2f}; diff mean {float(flat.mean()):.3f}/255, "
          f"p99.9 {p999:.0f}/255, bottom 16 rows {float(diff[:, -16:].mean()):.3f}/255; "
          f"load {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    from anime_core.inference import speed

    with speed.application():  # the process settings of the anime command line (heap reuse, one heap)
        main()
