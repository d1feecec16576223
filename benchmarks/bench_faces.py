"""Portrait mode (``anime run --faces``): time per image and per face, and its cost against the plain run.

One process, the cases interleaved in every round so they see the same load; medians. AnimeGAN v2
(the architecture of the face_paint styles) with random weights saved as a native file: its speed
does not depend on its values. The detector is the real RetinaFace file (``--detector-file``,
default ../shared/models), imported into a temporary cache.

    OMP_NUM_THREADS=2 python benchmarks/bench_faces.py --photo ../shared/photos/pexels-huy-phan-316220-1422386.jpg

Cases on one photo: ``plain`` (the model on the whole picture: ``anime run`` without --faces),
``faces`` (--faces --background same: the plain run plus every face), ``keep`` (--faces --background
keep: the faces only) and ``detect`` (the detector alone). Time per face = (faces - plain) / faces.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_NEAR = HERE.parent.parent / "shared"  # ../shared beside the checkout
SHARED = next((p for p in (_NEAR, Path("/work/shared")) if p.is_dir()), _NEAR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=SHARED / "photos" / "pexels-huy-phan-316220-1422386.jpg")
    ap.add_argument("--detector-file", type=Path, default=SHARED / "models" / "retinaface_mnet025.onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    os.environ["ANIME_HOME"] = tempfile.mkdtemp(prefix="anime-bench-faces-")
    import numpy as np
    import torch
    from PIL import Image

    import anime_core
    from anime_core.inference import io
    from anime_core.weights import import_file, save_native
    from anime_core.weights.known import RETINAFACE_KEY, RETINAFACE_SOURCE

    import_file(RETINAFACE_KEY, RETINAFACE_SOURCE, args.detector_file)
    torch.manual_seed(0)
    wpath = Path(os.environ["ANIME_HOME"]) / "v2.safetensors"
    save_native(wpath, {"generator": anime_core.build("animegan", "generator", variant="v2")}, "animegan",
                {"variant": "v2"})
    plain = anime_core.load("animegan", weights=wpath, device=args.device)
    faces = anime_core.load("animegan", weights=wpath, device=args.device, faces=True, background="same")
    keep = anime_core.load("animegan", weights=wpath, device=args.device, faces=True, background="keep")
    img = io.to_rgb(Image.open(args.photo))
    x = io.to_tensor(img)
    rgb = np.asarray(img)
    cases = {
        "plain": lambda: plain.translate(x),
        "faces": lambda: faces.translate(x),
        "keep": lambda: keep.translate(x),
        "detect": lambda: faces.detector(rgb),
    }
    for fn in cases.values():  # warm-up: allocator, ORT session, cuDNN
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    n = len(faces.last_faces)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"photo {args.photo.name} {img.width}x{img.height}, {n} face(s) stylised; torch threads "
          f"{torch.get_num_threads()}, rounds {args.rounds}; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("| case | median s/image | min s |")
    print("| --- | --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.3f} | {min(v):.3f} |")
    if n:
        print(f"\nper face (faces - plain) / {n}: {(med['faces'] - med['plain']) / n:.3f} s; "
              f"--faces / plain: {med['faces'] / med['plain']:.2f}x")


if __name__ == "__main__":
    main()
