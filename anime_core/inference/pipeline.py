"""Pipelines: what ``anime_core.load`` returns and ``anime run`` drives.

``TranslatePipeline``: files -> decode -> resize policy -> pad to the generator's stride
(reflect) -> batch equal sizes -> device/precision -> generator -> crop back -> atomic write.
Large images go through overlapping tiles so memory stays bounded. ``GeneratePipeline``:
seeded latents -> generator -> images or a grid.

A plugin customises a model's pipeline by subclassing and overriding ``preprocess`` /
``postprocess`` (value ranges, colour spaces), ``from_weights`` (which parts to load) or
``run_command`` (extra modes such as latent walks). Generators may declare an int attribute
``stride`` (an input side must be a multiple of it) and generate models ``latent_dim``.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.tiling import pad_to_multiple, run_tiled

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.specs import ModelSpec
    from anime_core.weights.files import LoadedWeights

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
AUTO_TILE_PIXELS = 2048 * 2048  # larger images are tiled even without --tile
DEFAULT_TILE = 1024
MIN_OVERLAP = 32  # px; seams are blended over the middle half of the overlap


def pick_device(device: str | torch.device | None) -> torch.device:
    """``auto``/``None`` -> cuda, then mps, then cpu; an unavailable device is a usage error."""
    name = str(device or "auto")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("CUDA was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("MPS was asked for but is not available on this machine; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'; use auto, cpu, cuda or mps") from None


@dataclass
class RunArgs:
    """Options of ``anime run`` common to every model."""

    inputs: list[str] = field(default_factory=list)
    output: Path | None = None
    size: int | None = None
    tile: int | None = None
    batch_size: int = 1
    side_by_side: bool = False
    num: int = 16
    seed: int = 0
    max_pixels: int = io.DEFAULT_MAX_PIXELS
    progress: bool = True


@dataclass
class RunReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        return f"{len(self.written)} written, {len(self.failed)} failed, {self.seconds:.1f} s"


class Pipeline(ABC):
    """Base: holds the nets on a device and the precision; see subclasses."""

    kind: ClassVar[str] = ""
    #: keep conv weights and inputs in channels-last (NHWC) memory. Off by default: on the CPU it
    #: measured 7% slower for AnimeGAN v2 at 512 px (benchmarks/RESULTS.md); a subclass or a GPU
    #: deployment, where cuDNN's NHWC kernels usually win in fp16/bf16, can turn it on.
    channels_last: ClassVar[bool] = False

    def __init__(
        self,
        spec: ModelSpec,
        nets: dict[str, nn.Module],
        device: str | torch.device | None = None,
        precision: str = "fp32",
        preprocess: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{precision}'; use fp32, fp16 or bf16")
        self.spec = spec
        self.device = pick_device(device)
        self.precision = precision
        self.defaults = dict(preprocess or {})
        self.options = options
        self.nets = {k: v.eval().requires_grad_(False).to(self.device) for k, v in nets.items()}
        if self.channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)

    @property
    def generator(self) -> nn.Module:
        return self.nets["generator"]

    @classmethod
    def from_weights(
        cls,
        spec: ModelSpec,
        registry: Registry,
        weights: LoadedWeights | None,
        generator_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Pipeline:
        """Build the generator with the options the weights need, load them, wrap in a pipeline."""
        from anime_core.api import build_part
        from anime_core.weights.files import load_into

        options = dict(generator_options or {})
        if weights is not None:
            options.update(weights.generator)
        gen = build_part(spec, "generator", registry=registry, **options)
        if weights is not None:
            part = cls.weights_part(kwargs)
            if part not in weights.parts:
                raise UsageError(
                    f"{weights.path} has no '{part}' part ({cls.part_hint(kwargs)}); "
                    f"it holds {', '.join(weights.parts)}"
                )
            load_into(gen, weights.parts[part], f"weights file {weights.path}")
        return cls(spec, {"generator": gen}, **kwargs)

    @classmethod
    def weights_part(cls, options: dict[str, Any]) -> str:
        """Which part of a weights file becomes the generator (e.g. a direction of CycleGAN)."""
        return "generator"

    @classmethod
    def part_hint(cls, options: dict[str, Any]) -> str:
        """Why that part was chosen, for the error when a file lacks it."""
        return "the generator"

    def autocast(self) -> Any:
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    @abstractmethod
    def run_command(self, args: RunArgs) -> RunReport:
        """What ``anime run MODEL`` does with the common options."""


class TranslatePipeline(Pipeline):
    """Image -> image. ``pipe(pil_image)`` returns a PIL image of the same size."""

    kind = "translate"
    out_scale = 1  # output side / input side (4 for a 4x super-resolution model)

    # -- value ranges (override for other colour spaces) -------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> generator input; default [-1, 1]."""
        return x * 2 - 1

    def postprocess(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Generator output (and the [0, 1] input) -> (N, 3, H', W') in [0, 1]; default from [-1, 1]."""
        return ((y.float() + 1) / 2).clamp(0, 1)

    @property
    def stride(self) -> int:
        return int(getattr(self.generator, "stride", 1) or 1)

    # -- tensors -----------------------------------------------------------------------------
    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float on any device -> (N, 3, H*s, W*s) float [0, 1] on the CPU."""
        x = x.to(self.device, non_blocking=True)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        padded, (h, w) = pad_to_multiple(x, self.stride)
        if self.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            y = self.generator(self.preprocess(padded))
        s = self.out_scale
        y = y[..., : h * s, : w * s]
        return self.postprocess(y, x).cpu()

    def translate(self, image: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """One (3, H, W) image, tiled when ``tile`` is set or the image is huge."""
        _, h, w = image.shape
        if tile is None and h * w > AUTO_TILE_PIXELS:
            tile = DEFAULT_TILE
        if tile and max(h, w) > tile:
            tile = max(self.stride, tile // self.stride * self.stride)
            overlap = min(tile // 2, max(MIN_OVERLAP, tile // 8))
            overlap = max(self.stride, -(-overlap // self.stride) * self.stride)
            return run_tiled(self.forward, image, tile, overlap, scale=self.out_scale)
        return self.forward(image.unsqueeze(0))[0]

    def prepare(self, img: Image.Image, size: int | None = None) -> Image.Image:
        """Apply the resize policy: ``size`` (long side), else the style's defaults."""
        size = size or self.defaults.get("size")
        return io.resize_long_side(
            img, size, center_crop=bool(self.defaults.get("center_crop")) and not self.options.get("no_crop")
        )

    def __call__(self, image: Image.Image, size: int | None = None, tile: int | None = None) -> Image.Image:
        img = self.prepare(image.convert("RGB"), size)
        return io.to_image(self.translate(io.to_tensor(img), tile))

    # -- files -------------------------------------------------------------------------------
    def output_path(self, item: io.InputFile, args: RunArgs, single: bool) -> Path:
        out = args.output or Path("anime_out")
        if single and out.suffix.lower() in io.IMAGE_EXTENSIONS:
            return out
        return out / item.rel

    def run_command(self, args: RunArgs) -> RunReport:
        """Translate files, folders and globs into ``args.output``; bad files are reported and skipped."""
        start = time.perf_counter()
        report = RunReport()
        items, bad_args = io.collect_inputs(args.inputs)
        report.failed += bad_args
        if not items and not bad_args:
            raise UsageError("no input images given; pass files, folders or globs")
        inputs = {i.path.resolve() for i in items}
        single = len(items) == 1
        bar = tqdm(total=len(items), unit="img", disable=not args.progress or len(items) < 2, desc=self.spec.name)
        pending: dict[tuple[int, int], list[tuple[io.InputFile, Path, Image.Image]]] = {}

        def flush(key: tuple[int, int]) -> None:
            group = pending.pop(key)
            batch = torch.stack([io.to_tensor(img) for _, _, img in group])
            try:
                outs = self.forward(batch)
            except RuntimeError as exc:  # e.g. out of memory: report each file, keep going
                for item, _, _ in group:
                    report.failed.append((str(item.path), f"generator failed: {exc}"))
                bar.update(len(group))
                return
            for (item, dest, img), y in zip(group, outs):
                self._write(item, dest, img, y, args, report)
                bar.update(1)

        for item in items:
            dest = self.output_path(item, args, single)
            if dest.resolve() in inputs:
                report.failed.append((str(item.path), f"output {dest} would overwrite an input; choose another -o"))
                bar.update(1)
                continue
            try:
                img = self.prepare(io.decode(item.path, args.max_pixels), args.size)
            except io.BadImage as exc:
                report.failed.append((str(item.path), str(exc)))
                bar.update(1)
                continue
            w, h = img.size
            if args.tile or h * w > AUTO_TILE_PIXELS:
                try:
                    y = self.translate(io.to_tensor(img), args.tile)
                except RuntimeError as exc:
                    report.failed.append((str(item.path), f"generator failed: {exc}"))
                    bar.update(1)
                    continue
                self._write(item, dest, img, y, args, report)
                bar.update(1)
                continue
            key = (h, w)
            pending.setdefault(key, []).append((item, dest, img))
            if len(pending[key]) >= args.batch_size:
                flush(key)
            elif sum(len(g) for g in pending.values()) > 2 * args.batch_size:
                flush(max(pending, key=lambda k: len(pending[k])))
        for key in list(pending):
            flush(key)
        bar.close()
        report.seconds = time.perf_counter() - start
        return report

    def _write(
        self, item: io.InputFile, dest: Path, img: Image.Image, y: torch.Tensor, args: RunArgs, report: RunReport
    ) -> None:
        out = io.to_image(y)
        if args.side_by_side:
            left = img.resize(out.size, Image.Resampling.LANCZOS) if img.size != out.size else img
            both = Image.new("RGB", (left.width + out.width, out.height))
            both.paste(left, (0, 0))
            both.paste(out, (left.width, 0))
            out = both
        try:
            io.write_atomic(out, dest)
        except (OSError, UsageError) as exc:
            report.failed.append((str(item.path), f"cannot write {dest}: {exc}"))
            return
        report.written.append(dest)


class GeneratePipeline(Pipeline):
    """Noise -> images. ``pipe.generate(n, seed)`` returns PIL images; same seed, same images."""

    kind = "generate"

    @property
    def latent_dim(self) -> int:
        return int(getattr(self.generator, "latent_dim", 100))

    def latents(self, n: int, seed: int) -> torch.Tensor:
        """``n`` latent vectors drawn on the CPU from ``seed`` (identical on every device)."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.latent_dim, generator=gen)

    def postprocess(self, y: torch.Tensor) -> torch.Tensor:
        return ((y.float() + 1) / 2).clamp(0, 1)

    @torch.inference_mode()
    def decode_latents(self, z: torch.Tensor, batch_size: int = 64, **kwargs: Any) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, H, W) in [0, 1] on the CPU."""
        outs = []
        for chunk in z.split(batch_size):
            with self.autocast():
                outs.append(self.postprocess(self.generator(chunk.to(self.device), **kwargs)).cpu())
        return torch.cat(outs)

    def generate(self, n: int = 16, seed: int = 0, **kwargs: Any) -> list[Image.Image]:
        return [io.to_image(x) for x in self.decode_latents(self.latents(n, seed), **kwargs)]

    def grid(self, images: Sequence[torch.Tensor] | torch.Tensor, nrow: int | None = None) -> Image.Image:
        from torchvision.utils import make_grid

        batch = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
        nrow = nrow or max(1, math.ceil(math.sqrt(len(batch))))
        return io.to_image(make_grid(batch, nrow=nrow, padding=2, pad_value=1.0))

    def run_command(self, args: RunArgs) -> RunReport:
        """Write a grid of ``args.num`` samples from ``args.seed`` to ``args.output`` (a .png file)."""
        start = time.perf_counter()
        if args.inputs:
            raise UsageError(
                f"'{self.spec.name}' generates images from noise and takes no input files; use --num and --seed"
            )
        out = args.output or Path(f"{self.spec.name}-seed{args.seed}.png")
        if out.suffix.lower() not in io.IMAGE_EXTENSIONS:
            out = out / f"{self.spec.name}-seed{args.seed}.png"
        images = self.decode_latents(self.latents(args.num, args.seed), batch_size=max(args.batch_size, 1))
        io.write_atomic(self.grid(images), out)
        return RunReport(written=[out], seconds=time.perf_counter() - start)
