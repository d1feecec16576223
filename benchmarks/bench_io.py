"""Images/s of ``anime run`` on a folder with decoding and writing overlapped (worker threads) or not.

Both paths run in one process, interleaved round by round, on the same photos with the same
random-weight generator (speed does not depend on the weight values), so machine load hits both
alike. ``prefetch=0`` is the single-thread path (decode, model, encode, write, one after another);
``prefetch=2`` decodes two batches ahead and writes finished images while the model runs. Also
prints what decoding and writing cost on their own and the model alone on decoded images (a
reference, not a bound: on a loaded 2-core CPU it measured below both paths), each round with ``uptime``.

    python benchmarks/bench_io.py                                  # ../shared/photos, animegan v2, 512 px
    python benchmarks/bench_io.py --batch-sizes 1 4 --rounds 4 --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import anime_core
from anime_core.inference import io
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import translate_files
from anime_core.weights import save_native

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return out[out.find("load average"):] if "load average" in out else out


def io_cost(pipe: TranslatePipeline, photos: list[Path], size: int, out: Path) -> tuple[float, float]:
    """Seconds per image to decode + resize, and to encode + write (the model's output shape), one thread."""
    start = time.perf_counter()
    images = [pipe.prepare(io.decode(p), size) for p in photos]
    read = (time.perf_counter() - start) / len(photos)
    outs = [torch.rand(3, img.height * pipe.out_scale, img.width * pipe.out_scale) for img in images]
    start = time.perf_counter()
    for i, (p, y) in enumerate(zip(photos, outs)):
        io.write_atomic(io.to_image(y), out / f"{i}{p.suffix}")
    return read, (time.perf_counter() - start) / len(photos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--prefetch", type=int, nargs="+", default=[0, 2], help="0: the single-thread path")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in io.IMAGE_EXTENSIONS)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "v2.safetensors"
        save_native(weights, {"generator": anime_core.build("animegan", "generator", variant="v2")}, "animegan",
                    {"variant": "v2"})
        pipe = anime_core.load("animegan", weights=weights, device=args.device, precision=args.precision)
        print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
              f"{torch.__version__} ({torch.get_num_threads()} threads), device {pipe.device}, {len(photos)} photos "
              f"from {args.photos}, --size {args.size}, {uptime()}")
        read, write = io_cost(pipe, photos, args.size, Path(tmp))
        print(f"# one thread: decode+resize {read * 1e3:.0f} ms/img, encode+write {write * 1e3:.0f} ms/img")
        translate_files(pipe, [str(photos[0])], FileOptions(output=Path(tmp) / "warm", size=args.size,
                                                                         progress=False))
        prepared = [io.to_tensor(pipe.prepare(io.decode(p), args.size)) for p in photos]
        rates: dict[tuple[int, int], list[float]] = {}
        for r in range(args.rounds):
            start = time.perf_counter()  # reference: the model alone on decoded images, nothing written
            for x in prepared:
                pipe.forward(torch.stack([x]))  # contiguous, as the file path stacks it
            rates.setdefault((0, -1), []).append(len(photos) / (time.perf_counter() - start))
            print(f"round {r} model only: {rates[(0, -1)][-1]:.3f} img/s ({uptime()})", flush=True)
            for batch in args.batch_sizes:
                for prefetch in args.prefetch if r % 2 == 0 else args.prefetch[::-1]:  # ABBA: drift hits both
                    out = Path(tmp) / f"out-{r}-{batch}-{prefetch}"
                    options = FileOptions(output=out, size=args.size, batch_size=batch, progress=False,
                                                prefetch=prefetch)
                    start = time.perf_counter()
                    report = translate_files(pipe, [str(p) for p in photos], options)
                    seconds = time.perf_counter() - start
                    assert len(report.written) == len(photos) and not report.failed, report.failed
                    rates.setdefault((batch, prefetch), []).append(len(photos) / seconds)
                    print(f"round {r} batch {batch} prefetch {prefetch}: {len(photos) / seconds:.3f} img/s "
                          f"({uptime()})", flush=True)
    print(f"\n| batch | prefetch | img/s (median of {args.rounds} rounds) | vs prefetch {args.prefetch[0]} "
          "(median of per-round ratios) |")
    print("| --- | --- | --- | --- |")
    for (batch, prefetch), values in sorted(rates.items()):
        if prefetch < 0:
            print(f"| model only | - | {statistics.median(values):.3f} | (reference: no I/O at all) |")
            continue
        ratios = [a / b for a, b in zip(values, rates[(batch, args.prefetch[0])])]
        print(f"| {batch} | {prefetch} | {statistics.median(values):.3f} | {statistics.median(ratios):.3f}x |")
    print(f"\n{uptime()}")


if __name__ == "__main__":
    main()
