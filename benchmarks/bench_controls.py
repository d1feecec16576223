"""--keep-colors, --strength and the webcam tab (issue 24): colour fidelity and frames per second.

``colours``: each real photo (``--photos``, long side ``--size``) through a random-weights
AnimeGAN v2 (seed 0; a trained style is not downloadable here, and the measures below hold for
any output). For keep-colours, two luminance-only transfers (Gatys et al. 2016) side by side:
CIE Lab (the output's L*, the photo's a*b*; what ``--keep-colors`` does) and BT.601 YCbCr (the
output's Y', the photo's Cb Cr; the family of the paper's YIQ). For each: the mean a*b* distance
to the photo (are the colours the photo's?) and the mean |L* - L*_style| (is the style's
lightness kept?), mean over the photos, and the worst photo. For strength: the mean CIE76
distance to the photo at 0, 0.25, 0.5, 0.75, 1.

``webcam``: the webcam tab's frame path (:func:`anime_core.ui.webcam.stylise`, a 640x480 frame
cut from a photo) at several long sides, median of ``--reps`` after a warm-up, and the fps that
gives; with ``--keep-colors`` timed too (its cost). Wall time depends on the machine's load; the
process's CPU time (``time.process_time``) per frame is what one thread needs on an idle core.

    python benchmarks/bench_controls.py colours --photos /work/shared/photos --size 256
    python benchmarks/bench_controls.py webcam --sides 128 192 256 320 384 --reps 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _machine() -> str:
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    return (f"{name}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"load {os.getloadavg()[0]:.1f}")


def _pipe(keep_colors: bool = False):
    import anime_core
    from anime_core.inference.pipeline import TranslatePipeline
    from anime_core.registry import get_registry

    torch.manual_seed(0)
    spec = get_registry().model("animegan")
    pipe = TranslatePipeline(spec, {"generator": anime_core.build("animegan", variant="v2")}, device="cpu",
                             keep_colors=keep_colors)
    return pipe


def _ycbcr_keep(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """BT.601 full-range Y'CbCr: the output's Y', the photo's Cb Cr, back to R'G'B' clipped."""
    m = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    to = torch.einsum("ij,njhw->nihw", m, y), torch.einsum("ij,njhw->nihw", m, x)
    ycc = torch.cat([to[0][:, :1], to[1][:, 1:]], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), ycc).clamp(0, 1)


def colours(photos: list[Path], size: int) -> None:
    from anime_core.inference import controls, io

    pipe = _pipe()
    rows = {"Lab (--keep-colors)": [], "YCbCr": []}
    steps = (0.0, 0.25, 0.5, 0.75, 1.0)
    dist = {s: [] for s in steps}
    for path in photos:
        x = io.to_tensor(pipe.prepare(io.decode(path), size)).unsqueeze(0).float() / 255
        x = (x * 255).round() / 255
        y = pipe.forward(x)
        lab_x, lab_y = controls.rgb_to_lab(x), controls.rgb_to_lab(y)
        for name, z in (("Lab (--keep-colors)", controls.keep_colors(y, x)), ("YCbCr", _ycbcr_keep(y, x))):
            z = (z * 255).round() / 255  # as written to a file
            lab_z = controls.rgb_to_lab(z)
            chroma = (lab_z[:, 1:] - lab_x[:, 1:]).norm(dim=1).mean().item()
            light = (lab_z[:, 0] - lab_y[:, 0]).abs().mean().item()
            rows[name].append((chroma, light))
        for s in steps:
            z = (controls.blend(y, x, s) * 255).round() / 255
            dist[s].append((controls.rgb_to_lab(z) - lab_x).norm(dim=1).mean().item())
        full = (lab_y[:, 1:] - lab_x[:, 1:]).norm(dim=1).mean().item()
        rows.setdefault("none (full style)", []).append((full, 0.0))
    print(f"# {_machine()}; {len(photos)} photos at long side {size}, random-weights AnimeGAN v2 (seed 0)")
    print("| method | mean a*b* distance to the photo (worst photo) | mean abs L* - L*_style (worst photo) |")
    print("| --- | ---: | ---: |")
    for name, vals in rows.items():
        c, lt = zip(*vals)
        print(f"| {name} | {np.mean(c):.2f} ({max(c):.2f}) | {np.mean(lt):.2f} ({max(lt):.2f}) |")
    print("\n| strength | " + " | ".join(f"{s:g}" for s in steps) + " |")
    print("| --- |" + " ---: |" * len(steps))
    print("| mean CIE76 distance to the photo | " + " | ".join(f"{np.mean(dist[s]):.2f}" for s in steps) + " |")


def webcam(sides: list[int], reps: int, photo: Path) -> None:
    from anime_core.inference import io
    from anime_core.ui.webcam import stylise

    frame = np.asarray(io.decode(photo).resize((640, 480), Image.Resampling.BILINEAR))
    print(f"# {_machine()}; a 640x480 frame, random-weights AnimeGAN v2, median of {reps} after a warm-up")
    print("| long side | frame | wall s/frame | fps | CPU s/frame | fps by CPU time | wall s with --keep-colors | "
          "CPU s with --keep-colors |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    pipes = (_pipe(False), _pipe(True))
    for side in sides:
        cells = []
        for pipe in pipes:
            out = stylise(pipe, frame, side)
            times, cpu = [], []
            for _ in range(reps):
                t, c = time.perf_counter(), time.process_time()
                stylise(pipe, frame, side)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            med, cmed = statistics.median(times), statistics.median(cpu)
            cells += [f"{med:.3f}", f"{1 / med:.1f}", f"{cmed:.3f}", f"{1 / cmed:.1f}"] if pipe is pipes[0] else [
                f"{med:.3f}", f"{cmed:.3f}"]
        print(f"| {side} | {out.shape[1]}x{out.shape[0]} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("colours")
    c.add_argument("--photos", type=Path, default=Path("/work/shared/photos"))
    c.add_argument("--size", type=int, default=256)
    w = sub.add_parser("webcam")
    w.add_argument("--sides", type=int, nargs="+", default=[128, 192, 256, 320, 384])
    w.add_argument("--reps", type=int, default=9)
    w.add_argument("--photo", type=Path, default=None)
    a = ap.parse_args()
    if a.what == "colours":
        colours(sorted(a.photos.glob("*.jpg")), a.size)
    else:
        photo = a.photo or sorted(Path("/work/shared/photos").glob("*.jpg"))[0]
        webcam(a.sides, a.reps, photo)


if __name__ == "__main__":
    main()
