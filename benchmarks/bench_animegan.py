"""AnimeGAN v2 at 512x512 on the CPU: plain eager forward vs the pipeline's inference path.

Compares, on the same random-weight generator and input, the median time of
  eager:          gen(x) under torch.no_grad()
  inference_mode: gen(x) under torch.inference_mode() (what TranslatePipeline.forward uses)
  channels_last:  inference_mode with the module and input in channels_last memory format
  pipeline:       TranslatePipeline.forward (inference_mode + value mapping + pad/crop)
Prints a Markdown table for benchmarks/RESULTS.md.

    python benchmarks/bench_animegan.py [--size 512] [--reps 5] [--variant v2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import anime_core
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.registry import get_registry


def timed(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variant", default="v2")
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = anime_core.build("animegan", "generator", variant=args.variant).eval()
    x = torch.rand(1, 3, args.size, args.size) * 2 - 1

    def eager() -> None:
        with torch.no_grad():
            gen(x)

    def inference() -> None:
        with torch.inference_mode():
            gen(x)

    gen_cl = (
        anime_core.build("animegan", "generator", variant=args.variant).eval().to(memory_format=torch.channels_last)
    )
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def channels_last() -> None:
        with torch.inference_mode():
            gen_cl(x_cl)

    pipe = TranslatePipeline(get_registry().model("animegan"), {"generator": gen}, device="cpu")
    x01 = (x + 1) / 2

    def pipeline() -> None:
        pipe.forward(x01)

    rows = [
        ("eager (no_grad)", timed(eager, args.reps)),
        ("inference_mode", timed(inference, args.reps)),
        ("inference_mode + channels_last", timed(channels_last, args.reps)),
        ("TranslatePipeline.forward", timed(pipeline, args.reps)),
    ]
    base = rows[0][1]
    print(
        f"animegan {args.variant}, {args.size}x{args.size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.reps}\n"
    )
    print("| path | median s | vs eager |")
    print("| --- | --- | --- |")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
