"""What a default ``anime_core.load(...)(image)`` call adds around OpenVINO's own inference (issue 26).

One process, paired rounds: each round times every path once, so a change of machine load hits
all of them; the median of the per-round ratios to OpenVINO's ``infer`` is the robust figure on a
shared machine. Paths, from the innermost out: OpenVINO's own compiled model (LATENCY hint, its
default precision) on a ready tensor; our infer request; our generator's ``_run``; the generator
module on a tensor; ``pipe.forward``; ``pipe(PIL image)`` (what a user calls). AnimeGAN v2 with
random weights (speed does not depend on values), the centre crop of a shared photo.

    python benchmarks/bench_call_overhead.py --size 256 --rounds 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

PHOTOS = next((p for p in (Path(__file__).resolve().parents[1].parent / "shared" / "photos",
                            Path("/work/shared/photos")) if p.is_dir()), Path("photos"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import openvino as ov
    import torch
    from PIL import Image

    import anime_core
    from anime_core.inference import io, speed
    from anime_core.registry import get_registry
    from anime_core.weights.files import save_native

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = get_registry().build("animegan", variant="v2")
    weights = save_native(Path(tempfile.mkdtemp(prefix="bench-overhead-")) / "g.safetensors", {"generator": gen},
                          "animegan", {"variant": "v2"})
    photo = Image.open(sorted(PHOTOS.glob("*.jpg"))[0]).convert("RGB")
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    img = photo.crop((left, top, left + side, top + side)).resize((args.size, args.size), Image.Resampling.LANCZOS)
    with speed.application():  # the anime command line's process settings
        pipe = anime_core.load("animegan", weights=weights)
        g = pipe.generator
        if getattr(g, "backend", "torch") != "openvino":
            raise SystemExit(f"the default here is {pipe.precision} on {getattr(g, 'backend', 'torch')}, not OpenVINO")
        x = io.to_tensor(img)[None].float() / 255
        xp = pipe.preprocess(x)
        feed = {g.input_names[0]: xp.contiguous().numpy()}
        ours = g.request()
        reference = ov.Core().compile_model(g.model, "CPU", {"PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
        tensor = ov.Tensor(np.ascontiguousarray(xp.numpy()))
        paths = {
            "OpenVINO infer (reference)": lambda: reference.infer([tensor]),
            "our infer request": lambda: ours.infer(feed, share_inputs=True),
            "generator._run": lambda: g._run(feed),
            "generator(x)": lambda: g(xp),
            "pipe.forward(x)": lambda: pipe.forward(x),
            "pipe(PIL image)": lambda: pipe(img),
        }
        for fn in paths.values():
            fn()
        times: dict[str, list[float]] = {name: [] for name in paths}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for name, fn in paths.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        loads.append(os.getloadavg()[0])
    ref = times["OpenVINO infer (reference)"]
    print(f"animegan v2, {args.size} px, {pipe.precision} on openvino, {args.threads} threads, {args.rounds} rounds, "
          f"load {loads[0]:.1f} -> {loads[1]:.1f}")
    print("| path | min ms | median ms | median of paired ratios |\n| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        paired = statistics.median(a / b for a, b in zip(values, ref))
        print(f"| {name} | {min(values) * 1e3:.1f} | {statistics.median(values) * 1e3:.1f} | {paired:.3f}x |")


if __name__ == "__main__":
    main()
