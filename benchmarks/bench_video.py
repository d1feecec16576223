"""`anime run` on videos: peak memory against frame count, and the flicker with and without --deflicker.

Clips are generated (a gradient background with shapes, a square moving 4 px a frame, optional
Gaussian noise as from a camera sensor, a 440 Hz sine audio track) and encoded with libx264. Weights
are random, written as a native file, so this runs offline. Each `anime` command runs in its own
process, and its peak RSS (``ru_maxrss`` from ``wait4``) is its own: interpreter, torch, model,
decoder, encoder and frames. Prints Markdown tables for benchmarks/RESULTS.md.

    python benchmarks/bench_video.py memory --size 1920x1080 --frames 2,6      # video vs one still image
    python benchmarks/bench_video.py flicker --size 256x192 --frames 48 --noise 4
    python benchmarks/bench_video.py flicker --size 256x192 --frames 48 --noise 4 --encode="--crf 0 --pix-fmt yuv444p"
    python benchmarks/bench_video.py throughput --size 1280x720 --frames 32   # fps on the default path

``throughput``: frames per second of ``anime run MODEL -w W clip.mp4 -o out.mp4`` with default settings
(backend and precision auto), from two timed runs after a warm-up (a 1-frame clip and an N-frame one:
(N - 1) / (t_N - t_1), so start-up, loading and the first frame cancel out), beside decoding alone,
encoding alone (libx264, the default CRF 18 yuv420p) and the model alone on one frame in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np


def square(i: int, w: int, h: int) -> tuple[slice, slice]:
    """Where frame ``i``'s moving square is: 4 px further right each frame."""
    side = max(8, h // 8)
    x = (4 * i) % (w - side)
    return slice(h // 2, h // 2 + side), slice(x, x + side)


def make_clip(path: Path, n: int, size: tuple[int, int], fps: int = 24, noise: float = 0.0) -> np.ndarray:
    import av
    from PIL import Image, ImageDraw

    w, h = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = Image.fromarray((np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 220).astype(np.uint8))
    draw = ImageDraw.Draw(bg)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - w // 4)), int(rng.integers(0, h - h // 4))
        draw.ellipse([x0, y0, x0 + w // 5, y0 + h // 5], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    background = np.asarray(bg, dtype=np.float32)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(n):
            f = background.copy()
            f[square(i, w, h)] = (250, 30, 30)
            if noise:
                f += rng.normal(0, noise, f.shape)
            frame = av.VideoFrame.from_ndarray(f.clip(0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode())
        samples = 44100 * n // fps
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 44100, start
            out.mux(a.encode(chunk))
        out.mux(a.encode())
    return background.astype(np.uint8)


def anime(*args: object) -> tuple[float, float, str]:
    """Run ``anime ARGS`` in a fresh process: (seconds, peak RSS MB, stdout)."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "anime_core.cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"anime {' '.join(map(str, args))} failed:\n{err.decode()}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out.decode()


def random_weights(path: Path, model: str, opts: dict) -> Path:
    import torch

    import anime_core
    from anime_core.weights import save_native

    torch.manual_seed(0)

    save_native(path, {"generator": anime_core.build(model, "generator", **opts)}, model, opts)
    return path


CHEAP = r"""
import resource, sys, torch
from pathlib import Path
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import translate_files
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.registry import get_registry
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
pipe = TranslatePipeline(get_registry().model("animegan"), {"generator": net}, "cpu")
options = FileOptions(output=Path(sys.argv[2]), batch_size=int(sys.argv[3]), progress=False)
report = translate_files(pipe, [sys.argv[1]], options)
assert not report.failed, report.failed
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(args: argparse.Namespace, tmp: Path, weights: Path) -> None:
    from PIL import Image

    size = tuple(map(int, args.size.split("x")))
    print("| model | input | frames | batch | seconds | s/frame | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in map(int, args.cheap_frames.split(",")):
        clip = tmp / f"cheap{n}.mp4"
        make_clip(clip, n, size)
        for batch in (1, 8):
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHEAP, clip, tmp / "cheap_out.mp4", str(batch)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode:
                raise SystemExit(out.stderr)
            s, rss = time.perf_counter() - t, float(out.stdout.split()[-1])
            row = f"| 1x1 conv | {size[0]}x{size[1]} mp4 + AAC | {n} | {batch} | {s:.1f} | {s / n:.2f} | {rss:.0f} |"
            print(row, flush=True)
    still = tmp / "still.png"
    for n in map(int, args.frames.split(",")):
        clip = tmp / f"clip{n}.mp4"
        first = make_clip(clip, n, size)
        if not still.exists():
            Image.fromarray(first).save(still)
            s, rss, _ = anime("run", args.model, "--weights", weights, still, "-o", tmp / "still_out.png", "-q")
            print(
                f"| {args.model} | {size[0]}x{size[1]} PNG image | 1 | 1 | {s:.1f} | {s:.1f} | {rss:.0f} |", flush=True
            )
        s, rss, _ = anime(
            "run", args.model, "--weights", weights, clip, "-o", tmp / "out.mp4", "-q", "--batch-size", args.batch
        )
        row = (
            f"| {args.model} | {size[0]}x{size[1]} mp4 + AAC | {n} | {args.batch} | {s:.1f} | {s / n:.1f} | {rss:.0f} |"
        )
        print(row, flush=True)


def flicker(args: argparse.Namespace, tmp: Path, weights: Path) -> None:
    size = tuple(map(int, args.size.split("x")))
    n = int(args.frames)
    clip = tmp / "clip.mp4"
    make_clip(clip, n, size, noise=args.noise)
    print("| output | flicker (levels) | static fraction | seconds |\n| --- | --- | --- | --- |")
    _, _, text = anime("eval", "--flicker", clip, "--reference", clip, "--json")
    r = json.loads(text)
    print(f"| the input clip itself | {r['flicker']:.3f} | {r['static_fraction']:.3f} | |", flush=True)
    outs = []
    for extra in ([], ["--deflicker"]):
        out = tmp / f"out{len(extra)}.mp4"
        outs.append(out)
        run = ["run", args.model, "--weights", weights, clip, "-o", out, "-q", "--batch-size", args.batch]
        run += args.encode.split()
        s, _, _ = anime(*run, *extra)
        _, _, text = anime("eval", "--flicker", out, "--reference", clip, "--json")
        r = json.loads(text)
        name = "`--deflicker`" if extra else "plain"
        print(f"| {name} | {r['flicker']:.3f} | {r['static_fraction']:.3f} | {s:.1f} |", flush=True)
    ghost = ghosting(*outs, size)
    print(f"\nghosting: mean |--deflicker - plain| where the square moves: {ghost:.3f} levels")


def ghosting(plain: Path, smoothed: Path, size: tuple[int, int]) -> float:
    """Mean |deflickered - plain| where the square is in this frame or was in the previous one: 0 = no ghost."""
    from anime_core.inference.video import iter_frames

    total = count = 0.0
    for i, (a, b) in enumerate(zip(iter_frames(plain), iter_frames(smoothed))):
        if i:
            moving = np.zeros(a.shape[:2], bool)
            moving[square(i, *size)] = moving[square(i - 1, *size)] = True
            total += float(np.abs(a.astype(np.int16) - b.astype(np.int16))[moving].sum()) / 3
            count += float(moving.sum())
    return total / max(count, 1)


def throughput(args: argparse.Namespace, tmp: Path, weights: Path) -> None:
    import av
    import torch

    import anime_core
    from anime_core.inference import io

    w, h = map(int, args.size.split("x"))
    n = int(args.frames.split(",")[-1])
    one, clip = tmp / "one.mp4", tmp / "clip.mp4"
    make_clip(one, 1, (w, h), fps=args.fps, noise=args.noise)
    make_clip(clip, n, (w, h), fps=args.fps, noise=args.noise)
    run = ("run", args.model, "-w", weights, "-q")
    anime(*run, one, "-o", tmp / "warm.mp4")  # the export and the precision verdict are cached from here on
    t1, _, _ = anime(*run, one, "-o", tmp / "o1.mp4")
    tn, rss, _ = anime(*run, clip, "-o", tmp / "on.mp4")
    start = time.perf_counter()
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    decode_s, decoded = time.perf_counter() - start, len(frames)
    start = time.perf_counter()
    with av.open(str(tmp / "enc.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=args.fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    encode_s = time.perf_counter() - start
    pipe = anime_core.load(args.model, weights=weights, device="cpu")
    x = io.to_tensor(io.to_image(torch.from_numpy(frames[0]).permute(2, 0, 1).float() / 255))
    pipe.translate(x)
    model_s = sorted(_timed(lambda: pipe.translate(x)) for _ in range(3))[1]
    fps = (n - 1) / (tn - t1)
    print(f"| {w}x{h} | {n} frames | {fps:.3f} fps ({(tn - t1) / (n - 1):.2f} s/frame) | model alone "
          f"{1 / model_s:.3f} fps ({model_s:.2f} s/frame, {pipe.precision} on "
          f"{getattr(pipe.generator, 'backend', 'torch')}) | decode alone {decoded / decode_s:.1f} fps | "
          f"encode alone {n / encode_s:.1f} fps | peak RSS {rss:.0f} MB | 1-frame run {t1:.1f} s |")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["memory", "flicker", "throughput"])
    ap.add_argument("--fps", type=int, default=16, help="throughput: the clip's frame rate")
    ap.add_argument("--model", default="animegan")
    ap.add_argument("--options", default="variant=v2", help="generator options, k=v,...")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--frames", default="2,6")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--cheap-frames", default="24,96", help="memory: clips through a 1x1 conv (the video path alone)")
    ap.add_argument("--noise", type=float, default=4.0)
    ap.add_argument("--encode", default="", help="flicker: encoder options, e.g. '--crf 0 --pix-fmt yuv444p'")
    args = ap.parse_args()
    opts = dict(kv.split("=", 1) for kv in filter(None, args.options.split(",")))
    print(f"{args.model} {opts}, random weights, CPU, load average {os.getloadavg()[0]:.1f} at start\n")
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_weights(Path(tmp) / "w.safetensors", args.model, opts)
        {"memory": memory, "flicker": flicker, "throughput": throughput}[args.what](args, Path(tmp), weights)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
