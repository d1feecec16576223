"""Do the photo -> anime models learn a style from unpaired data? A CPU learning benchmark (issue 16).

The "anime" domain is synthetic, so the right answer is known for every photo: a fixed cartoon
filter, :func:`cartoon`, made of three library operations (no pixel loops):

1. edge-preserving smoothing: a bilateral filter (``skimage.restoration.denoise_bilateral``,
   colour sigma 0.1 on [0, 1], spatial sigma 2 px);
2. colour quantisation: every channel rounded to 6 levels (0, 0.2, ..., 1);
3. dark outlines: Canny edges of the smoothed image's luminance (``skimage.feature.canny``,
   sigma 1.5) multiplied by 0.25.

The real photos (``../shared/photos``: eight 1536 px Pexels photos) are shrunk (long side 384 px
for crops up to 128 px, 512 px for 256 px crops). The last two photos are held out. From the six
others, random crops are drawn twice: one set stays photos (``photo/``), the filter is applied to
another set of crops (``anime/``): unpaired, as the models expect. Each model trains for a fixed
number of optimizer steps through the core loop (``anime_core.training.loop.train``, CPU, fp32),
then translates held-out crops (also at every ``every`` steps, from the checkpoints: a learning
curve). Scores are PSNR (dB) and SSIM (torchmetrics, as ``anime eval``)
between the model's output and the filter's output of the same crop, next to two baselines: the
photo itself (identity: the score of doing nothing) and the same network untrained (the weights
the run started from: same seed, same initialisation).

``loss.vgg_pretrained=false``: the ImageNet VGG19 cannot be downloaded here, so AnimeGAN's content
(eq. 2) and grayscale style (eq. 3) losses see random VGG19 features. Random convolution features
still keep spatial layout and local texture statistics (a content loss on them still ties the
output to the photo's structure; their Gram matrices still describe textures), but none of the
semantic invariance of trained features: the content term is closer to a pixel-structure loss and
the style term carries less of the anime look. CycleGAN uses no pretrained network.

    .venv/bin/python benchmarks/bench_learning.py [--models animegan-v1 ...] [--scale 1.0] [--threads N]
        [--json out.json]

Sample strips (rows: held-out crops; columns: photo, filter target, untrained, trained) go to
``benchmarks/learning/<model>.png``; the two training domains (unpaired crops: photos, filtered
photos) to ``benchmarks/learning/domain-<crop>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
PHOTOS = HERE.parent.parent / "shared" / "photos"
OUT = HERE / "learning"
HELD_OUT = 2  # the last photos (sorted by name) are never trained on

#: the cartoon filter's parameters (see the module docstring)
SIGMA_COLOR, SIGMA_SPATIAL = 0.1, 2.0
LEVELS = 6
EDGE_SIGMA, OUTLINE = 1.5, 0.25


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """The fixed cartoon filter: (H, W, 3) uint8 -> (H, W, 3) uint8 (smoothing, quantisation, outlines)."""
    from skimage.color import rgb2gray
    from skimage.feature import canny
    from skimage.restoration import denoise_bilateral

    smooth = denoise_bilateral(rgb.astype(np.float64) / 255, sigma_color=SIGMA_COLOR, sigma_spatial=SIGMA_SPATIAL,
                               channel_axis=-1)
    flat = np.round(smooth * (LEVELS - 1)) / (LEVELS - 1)
    flat[canny(rgb2gray(smooth), sigma=EDGE_SIGMA)] *= OUTLINE
    return np.clip(flat * 255 + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Model:
    """One benchmarked model: the registered name, its crop size, budget, config overrides, and how often
    (in steps) a checkpoint is scored for the learning curve (0: only the end)."""

    model: str
    size: int
    steps: int
    overrides: list[str]
    run_options: dict[str, Any] = field(default_factory=dict)
    every: int = 0


#: widths and batches are cut where the paper's would not train in minutes on a CPU (AnimeGAN's generator has
#: no width option); AnimeGAN's initialisation phase is 4 epochs of our 48 crops (48 steps: one epoch of the
#: paper's 6,656 photos is 1,664); everything else is each model's default recipe
MODELS = {
    "animegan-v1": Model("animegan", 64, 150, ["generator.variant=v1", "loss.vgg_pretrained=false",
                                               "train.init_epochs=4"], every=25),
    "animegan-v2": Model("animegan", 64, 150, ["generator.variant=v2", "loss.vgg_pretrained=false",
                                               "train.init_epochs=4"], every=25),
    "cyclegan-resnet": Model("cyclegan", 64, 300, ["generator.arch=resnet", "generator.width=16",
                                                   "generator.n_blocks=6", "discriminator.width=16",
                                                   "train.batch_size=4"], {"direction": "photo2anime"}, every=75),
    "cyclegan-unet": Model("cyclegan", 256, 150, ["generator.arch=unet", "generator.width=16",
                                                 "discriminator.width=16", "train.batch_size=2"],
                           {"direction": "photo2anime"}, every=50),
}


# -- the synthetic domain ---------------------------------------------------------------------------
def shrink(path: Path, long_side: int) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        return im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)


def crops(images: Sequence[Image.Image], n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random ``size`` x ``size`` crops, each from a random image."""
    out = []
    for _ in range(n):
        img = np.asarray(images[int(rng.integers(len(images)))])
        y, x = int(rng.integers(img.shape[0] - size + 1)), int(rng.integers(img.shape[1] - size + 1))
        out.append(img[y : y + size, x : x + size])
    return out


def build_domain(photos: Sequence[Path], root: Path, size: int, n_train: int = 48, n_test: int = 8,
                 long_side: int | None = None, held_out: int = HELD_OUT, seed: int = 0) -> Path:
    """Write ``photo/`` and ``anime/`` (unpaired training crops) and ``test/{photo,target}/`` under ``root``."""
    rng = np.random.default_rng(seed)
    long_side = long_side or (384 if size <= 128 else 512)
    images = [shrink(p, long_side) for p in sorted(photos)]
    train, test = images[:-held_out], images[-held_out:]
    sets = {
        "photo": crops(train, n_train, size, rng),
        "anime": [cartoon(c) for c in crops(train, n_train, size, rng)],
        "test/photo": crops(test, n_test, size, rng),
    }
    sets["test/target"] = [cartoon(c) for c in sets["test/photo"]]
    for name, arrays in sets.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, arr in enumerate(arrays):
            Image.fromarray(arr).save(root / name / f"{i:03d}.png")
    return root


def read_folder(folder: Path) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))]


# -- training and scoring ---------------------------------------------------------------------------
def overrides(m: Model, domain: Path, steps: int, run_dir: Path, seed: int = 0) -> list[str]:
    return [f"data.photo={domain / 'photo'}", f"data.anime={domain / 'anime'}", f"train.image_size={m.size}",
            f"train.max_steps={steps}", f"output_dir={run_dir}", f"train.seed={seed}", "train.device=cpu",
            "data.num_workers=0", "train.log_every=10", "train.sample_every=0", f"train.checkpoint_every={m.every}",
            "train.keep_checkpoints=1000", "train.tensorboard=false", *m.overrides]


def untrained_weights(m: Model, opts: list[str], path: Path) -> Path:
    """The network a run of ``opts`` starts from (the loop's seed, the task's initialisation), exported."""
    from accelerate.utils import set_seed

    from anime_core import config as cfglib
    from anime_core.registry import get_registry
    from anime_core.weights.files import save_native

    reg = get_registry()
    spec = reg.model(m.model)
    cfg = cfglib.resolve(spec, None, opts)
    set_seed(cfg.train.seed)
    task = spec.task_class()(spec, cfg, reg)
    task.build(steps_per_epoch=1)
    save_native(path, {p: task.nets[p] for p in task.export_parts}, m.model, task.generator_config())
    return path


def translate(m: Model, weights: Path, photos: Sequence[Image.Image], state: Path | None = None) -> list[Image.Image]:
    """The model's outputs for ``photos``; ``state``: a checkpoint's generator (Accelerate's ``model.safetensors``)."""
    import anime_core

    pipe = anime_core.load(m.model, weights=weights, device="cpu", **m.run_options)
    if state is not None:
        from safetensors.torch import load_file

        pipe.generator.load_state_dict(load_file(str(state)))
    return [pipe(p) for p in photos]


def curve(m: Model, run_dir: Path, start: Path, photos: Sequence[Image.Image],
          targets: Sequence[Image.Image]) -> list[tuple[int, float, float]]:
    """(step, PSNR, SSIM) of every checkpoint's generator, the first net the task prepares (photo -> anime)."""
    from anime_core.training.checkpoint import checkpoints

    return [(c.step, *scores(translate(m, start, photos, c.path / "model.safetensors"), targets))
            for c in checkpoints(run_dir)]


def scores(outputs: Sequence[Image.Image], targets: Sequence[Image.Image]) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of ``outputs`` against ``targets`` (torchmetrics, images in [0, 1])."""
    import torch

    from anime_core.metrics.paired import psnr, ssim

    def stack(images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.asarray(i, dtype=np.float32) / 255).permute(2, 0, 1) for i in images])

    fake, real = stack(outputs), stack(targets)
    return float(psnr(fake, real).mean()), float(ssim(fake, real).mean())


def strip(columns: Sequence[Sequence[Image.Image]], path: Path, rows: int = 4, pad: int = 2) -> Path:
    """A grid PNG: one column per image list (photo, target, untrained, trained), ``rows`` rows."""
    from anime_core.fsutil import atomic_path

    size = columns[0][0].size[0]
    grid = Image.new("RGB", (len(columns) * (size + pad) - pad, rows * (size + pad) - pad), "white")
    for c, images in enumerate(columns):
        for r, img in enumerate(images[:rows]):
            grid.paste(img, (c * (size + pad), r * (size + pad)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return path


def run_model(name: str, m: Model, domain: Path, work: Path, steps: int, out: Path | None) -> dict[str, Any]:
    """Train ``m`` for ``steps``; its scores, the baselines' and the training time."""
    from anime_core.training.loop import train

    photos, targets = read_folder(domain / "test" / "photo"), read_folder(domain / "test" / "target")
    opts = overrides(m, domain, steps, work / f"run-{name}")
    start = untrained_weights(m, opts, work / f"untrained-{name}.safetensors")
    before = translate(m, start, photos)
    t0 = time.perf_counter()
    run_dir = train(m.model, overrides=opts, progress=False)
    seconds = time.perf_counter() - t0
    after = translate(m, run_dir / "generator.safetensors", photos)
    row = {"model": name, "crop": m.size, "steps": steps, "train_s": round(seconds, 1),
           "trained": scores(after, targets), "untrained": scores(before, targets),
           "identity": scores(photos, targets), "curve": curve(m, run_dir, start, photos, targets) if m.every else []}
    if out is not None:
        row["strip"] = str(strip([photos, targets, before, after], out / f"{name}.png"))
    return row


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| model | crop | steps | train (s) | PSNR trained | PSNR untrained | PSNR identity | SSIM trained "
             "| SSIM untrained | SSIM identity |", "| --- |" + " ---: |" * 9]
    for r in rows:
        p, s = (f"{r[k][0]:.2f}" for k in ("trained", "untrained", "identity")), (
            f"{r[k][1]:.3f}" for k in ("trained", "untrained", "identity"))
        lines.append(f"| {r['model']} | {r['crop']} | {r['steps']} | {r['train_s']:.0f} | " + " | ".join(p)
                     + " | " + " | ".join(s) + " |")
    curves = [f"- {r['model']}: " + ", ".join(f"{step}: {p:.2f} dB / {s:.3f}" for step, p, s in r["curve"])
              for r in rows if r.get("curve")]
    if curves:
        lines += ["", "PSNR / SSIM of the checkpoints, by step:", *curves]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every model's step budget")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--out", type=Path, default=OUT, help="where the PNG strips go")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--threads", type=int, help="torch threads (1 is much faster on a CPU shared with other work)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    photos = sorted(p for p in a.photos.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if len(photos) <= HELD_OUT:
        print(f"need more than {HELD_OUT} photos in {a.photos}", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {load:.1f} at the start; {len(photos)} photos "
          f"({HELD_OUT} held out)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        work = Path(tmp)
        domains: dict[int, Path] = {}
        for name in a.models:
            m = MODELS[name]
            if m.size not in domains:
                domains[m.size] = build_domain(photos, work / f"domain-{m.size}", m.size)
                anime = read_folder(domains[m.size] / "anime")
                strip([read_folder(domains[m.size] / "photo"), anime], a.out / f"domain-{m.size}.png")
            row = run_model(name, m, domains[m.size], work, max(1, round(m.steps * a.scale)), a.out)
            rows.append(row)
            print(f"{name}: {json.dumps(row)}", flush=True)
    print(f"# load {os.getloadavg()[0]:.1f} at the end")
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
