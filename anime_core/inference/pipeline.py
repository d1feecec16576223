"""Pipelines: what ``anime_core.load`` returns. They compute; the runner (``anime_core.runner``) handles files.

``TranslatePipeline``: PIL image or (N, 3, H, W) tensor -> resize policy -> pad to the generator's
stride (reflect) -> device/precision -> generator -> crop back -> the user controls (``keep_colors``,
``strength``: :mod:`anime_core.inference.controls`). Large images go through tiles
that reproduce the untiled result in less memory (``translate``).
``GeneratePipeline``: seeded latents -> generator -> images.

A plugin customises a model's pipeline by subclassing and overriding ``preprocess`` /
``postprocess`` (value ranges, colour spaces), ``weights_part`` (which part of a weights file
is the generator) or ``run_mode`` (an extra mode of ``anime run`` such as a latent walk: it
returns the images, the CLI writes them; see :mod:`anime_core.inference.modes`). Generators may
declare int attributes ``stride`` (an input side must be a multiple of it), ``min_side`` (the
smallest input side; otherwise found by trying sizes when a small image fails) and, for generate
models, ``latent_dim``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from PIL import Image
from torch import nn

from anime_core.budget import max_memory
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.inference import io, speed
from anime_core.inference import precision as auto
from anime_core.inference.casting import CastNets
from anime_core.inference.controls import Controls, owned
from anime_core.inference.inputs import check_finite, translate_any
from anime_core.inference.modes import AUTO_TILE_PIXELS, DEFAULT_TILE, ModeOutput, RunRequest
from anime_core.inference.norms import norm_spec
from anime_core.inference.tileplan import TilePlan, plan_tiles
from anime_core.inference.tiling import (
    Progress,
    TilingReport,
    layout,
    pad_to_multiple,
    run_faithful,
    run_tiled,
    segments,
    sweep_need,
    tiling_cost,
)

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.specs import ModelSpec
    from anime_core.weights.files import LoadedWeights

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: what ``--precision`` takes: ``auto`` resolves to one of PRECISIONS (:mod:`anime_core.inference.precision`)
PRECISION_CHOICES = ("auto", *PRECISIONS)
DEFAULT_PRECISION = "auto"  # of ``anime_core.load``, ``anime run`` and the web app; a pipeline built directly: fp32
MIN_OVERLAP = 32  # px; seams are blended over the middle half of the overlap
MAX_PROBE_SIDE = 1024  # min_side search gives up above this: the failure is not about size


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


def use_channels_last(device: torch.device, nets: Sequence[nn.Module], policy: bool | None = None) -> bool:
    """Channels-last (NHWC) memory for ``nets`` on ``device``, unless ``policy`` forces it on or off.

    On CUDA and the CPU unless a net has instance norms: their kernels return NCHW and run on a
    reshaped copy (3x slower than NCHW on the CPU), which undoes the gain of the convolutions around
    them. Measured on the CPU (benchmarks/RESULTS.md): depthwise 3x3 convs 5.7x and 3x3 convs 1.5x
    faster in NHWC; AnimeGAN v2, ae, PixelSake SR and DCGAN faster, AnimeGAN v1 and both CycleGANs
    (instance norms) 10-40% slower. Other devices keep NCHW.
    """
    if policy is not None:
        return policy
    if device.type not in ("cuda", "cpu") or any(getattr(net, "opaque", None) for net in nets):
        return False  # a graph run outside torch (ONNX Runtime, OpenVINO) takes contiguous NCHW: no copy to NHWC
    instance = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    return not any(isinstance(m, instance) for net in nets for m in net.modules())


class PrecisionFallback(UserWarning):
    """fp16/bf16 was asked for on a device that would only emulate it; the pipeline runs in fp32."""



def resolve_precision(device: torch.device, precision: str) -> tuple[str, str | None]:
    """(the precision to run in, a one-line notice when it is not the one asked for); ``auto`` stays ``auto``.

    ``auto`` is settled once the nets are loaded, on the first use (:meth:`Pipeline.precision`).
    """
    if precision == "auto":
        return precision, None
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; use auto, fp32, fp16 or bf16")
    if auto.precision_accelerated(device, precision):
        return precision, None
    where = "this CPU has no native" if device.type == "cpu" else f"this {device.type} device has no native"
    return "fp32", f"{where} {precision} arithmetic, so {precision} would be far slower than fp32; running in fp32"



class Pipeline(ABC):
    """Base: holds the nets on a device and the precision; see subclasses."""

    kind: ClassVar[str] = ""
    #: keep conv weights and inputs in channels-last (NHWC) memory: ``None`` decides by device
    #: (:func:`use_channels_last`), True/False forces it (a subclass whose layers are slower in NHWC)
    channels_last_policy: ClassVar[bool | None] = None
    #: serve large CPU allocations from the heap during a call (:func:`anime_core.inference.speed.reuse_cpu_memory`)
    reuse_cpu_memory: ClassVar[bool] = True

    def __init__(
        self,
        spec: ModelSpec,
        nets: dict[str, nn.Module],
        device: str | torch.device | None = None,
        precision: str = "fp32",
        preprocess: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.spec = spec
        self.device = pick_device(device)
        #: the precision asked for; ``precision_notice`` says why the one that runs differs from it
        self.precision_asked = precision
        #: one line naming the precision that runs and why (``auto``: the parity verdict), for ``anime run``
        self.precision_choice = ""
        self._precision, self.precision_notice = resolve_precision(self.device, precision)
        #: set by ``anime_core.load`` when ``--backend auto`` could not use the backend it picked
        self.backend_notice: str | None = None
        if self.precision_notice:
            warnings.warn(self.precision_notice, PrecisionFallback, stacklevel=2)
        self.defaults = dict(preprocess or {})
        self.options = options
        self.nets = {k: v.eval().requires_grad_(False).to(self.device) for k, v in nets.items()}
        #: whether conv weights and image inputs are channels-last (NHWC) in memory
        self.channels_last = use_channels_last(self.device, list(self.nets.values()), self.channels_last_policy)
        if self.channels_last:
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
        #: on the CPU, bf16/fp16 cast the torch nets themselves instead of autocast (see :mod:`.casting`)
        self.cast = CastNets.of(n for n in self.nets.values() if not getattr(n, "opaque", None)) \
            if self.device.type == "cpu" else None
        self._shapes_seen: set[tuple[int, ...]] = set()
        if self._precision != "auto":
            self._set_precision(self._precision)  # a generator outside torch compiles for it

    @property
    def generator(self) -> nn.Module:
        return self.nets["generator"]

    @property
    def precision(self) -> str:
        """The precision the nets run in: ``auto`` is settled here on first use (a parity check, cached per weights)."""
        if self._precision == "auto":

            self._precision = "fp32"  # while the check runs
            chosen, self.precision_choice = auto.choose(self)
            self._set_precision(chosen)
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._set_precision(value)

    def _set_precision(self, value: str) -> None:
        self._precision = value
        select = getattr(self.generator, "set_precision", None)  # a generator outside torch (OpenVINO)
        if callable(select) and value != "auto":
            select(value)
        if self.cast is not None and value != "auto":
            self.cast.set(PRECISIONS[value])

    @contextmanager
    def running_in(self, precision: str) -> Iterator[None]:
        """Run in ``precision`` inside (the parity check), then go back."""
        before = self._precision
        self._set_precision(precision)
        try:
            yield
        finally:
            self._set_precision(before)

    def parity_sample(self) -> torch.Tensor:
        """Images in [0, 1] on the CPU from a fixed input, to compare precisions (:mod:`.precision`).

        A pipeline without one runs ``auto`` in fp32 (the check fails with this error).
        """
        raise NotImplementedError(f"{type(self).__name__} has no parity sample")

    @classmethod
    def from_weights(
        cls,
        spec: ModelSpec,
        registry: Registry,
        weights: LoadedWeights | None,
        generator_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Pipeline:
        """Build the generator with the options the weights need, load them, wrap in a pipeline.

        Options a weights file records are checked against its tensors before anything is built
        (:func:`anime_core.weights.files.build_loaded`).
        """
        from functools import partial

        from anime_core.weights.files import build_loaded, shown_names

        options = dict(generator_options or {})
        build = partial(registry.build, spec, "generator")
        if weights is None:
            return cls(spec, {"generator": build(**options)}, **kwargs)
        options.update(weights.generator)
        part = cls.weights_part(kwargs)
        if part not in weights.parts:
            raise UsageError(
                f"{weights.path} has no '{part}' part ({cls.part_hint(kwargs)}); it holds {shown_names(weights.parts)}"
            )
        try:
            gen = build_loaded(build, options, weights.parts[part], f"weights file {weights.path}")
        except WeightsUnavailable as exc:
            if weights.hint:  # a foreign file no converter took: say what it resembles instead
                raise WeightsUnavailable(f"{weights.path} {weights.hint}") from exc
            raise
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
        """Around every call of the nets. Where the device runs the precision by autocast (GPUs): that context;
        else none (fp32, or CPU nets cast to it, which this puts in this pipeline's precision)."""
        outside = callable(getattr(self.generator, "set_precision", None))  # a graph compiled for its precision
        if self.cast is not None:  # nets shared with another pipeline may be in its precision: ours again
            self.cast.set(PRECISIONS[self.precision])
        if self.precision == "fp32" or self.cast is not None or outside:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def to_compute(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the dtype the nets compute in, for a call the nets' pre-hook does not see (``gen.encode``)."""
        return self.cast.to_compute(x) if self.cast is not None else x

    @property
    def on_graph(self) -> bool:
        """Whether a graph runtime (ONNX Runtime, OpenVINO) runs the generator, torch only the steps around it."""
        return getattr(self.generator, "backend", "torch") != "torch"

    @contextlib.contextmanager
    def speed_scope(self) -> Iterator[None]:
        """Around a whole call. On the CPU, freed activations are reused instead of page-faulted anew; on a
        graph backend, which holds no torch activations, torch's small steps run in the calling thread
        (:func:`speed.one_torch_thread`)."""
        cpu = self.device.type == "cpu"
        with speed.reuse_cpu_memory(cpu and self.reuse_cpu_memory and not self.on_graph), \
                speed.one_torch_thread(cpu and self.on_graph):
            yield

    def _autotune(self, x: torch.Tensor) -> None:
        """cuDNN autotuning once an input shape repeats on CUDA (see :func:`speed.cudnn_autotune`)."""
        speed.cudnn_autotune(self.device, tuple(x.shape), self._shapes_seen)

    @abstractmethod
    def run_mode(self, request: RunRequest) -> ModeOutput | None:
        """The images ``anime run`` writes for these options; ``None``: translate the input files."""


class TranslatePipeline(Pipeline):
    """Image -> image. ``pipe(x)`` takes a path, PIL image, array, tensor or a list of them (:meth:`__call__`)."""

    kind = "translate"
    out_scale = 1  # output side / input side (4 for a 4x super-resolution model)

    def __init__(self, spec: ModelSpec, nets: dict[str, nn.Module], *args: Any, **options: Any) -> None:
        #: ``keep_colors`` / ``strength``, applied after :meth:`postprocess` (:mod:`anime_core.inference.controls`);
        #: checked before the nets move to the device
        self.controls = Controls.from_options(spec, options)
        super().__init__(spec, nets, *args, **options)

    def with_controls(self, keep_colors: bool | None = None, strength: float | None = None) -> TranslatePipeline:
        """This pipeline with other controls (``None``: as it is), sharing its nets: no reload for a slider."""
        asked = {k: v for k, v in (("keep_colors", keep_colors), ("strength", strength)) if v is not None}
        for name in sorted(owned(self.spec) & set(asked)):
            raise UsageError(f"{self.spec.name} has its own {name} option; pass {name}= to anime_core.load instead")
        twin = copy.copy(self)
        twin.controls = dataclasses.replace(self.controls, **asked)
        return twin

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

    @functools.cached_property
    def min_side(self) -> int:
        """The smallest input side the generator takes: its ``min_side``, else the smallest size that runs."""
        declared = getattr(self.generator, "min_side", None)
        if declared:
            return int(declared)
        hi = 1
        while not self._accepts(hi):
            if hi >= MAX_PROBE_SIDE:
                return 1
            hi *= 2
        lo = hi // 2  # fails (or 0): bisect, assuming larger inputs keep working
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self._accepts(mid) else (mid, hi)
        return hi

    # -- tensors -----------------------------------------------------------------------------
    def _generate(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] input on the device -> raw generator output of the stride-padded input."""
        padded, _ = pad_to_multiple(x, self.stride)
        if self.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        self._autotune(padded)
        with self.autocast():
            return self.generator(self.preprocess(padded))

    @torch.inference_mode()
    def _accepts(self, side: int) -> bool:
        try:
            self._generate(torch.full((1, 3, side, side), 0.5, device=self.device))
        except (RuntimeError, ValueError):
            return False
        return True

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float on any device -> (N, 3, H*s, W*s) float [0, 1] on the CPU.

        Non-finite generator outputs come back as NaN (not clamped into plausible pixels), so
        :func:`check_finite` can refuse them; an input under :attr:`min_side` raises ``BadImage``.
        """
        with self.speed_scope():
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        h, w = x.shape[-2:]
        try:
            y = self._generate(x)
        except (RuntimeError, ValueError):
            if min(h, w) < MAX_PROBE_SIDE and min(h, w) < self.min_side:
                raise io.BadImage(
                    f"image is {w}x{h} px, under the {self.min_side} px on each side that "
                    f"{self.spec.name} needs; upscale it"
                ) from None
            raise
        s = self.out_scale
        y = y[..., : h * s, : w * s].float()
        y = torch.nan_to_num(y, nan=torch.nan, posinf=torch.nan, neginf=torch.nan)  # one pass: inf -> NaN
        return self.controls.apply(self.postprocess(y, x), x).cpu()

    @staticmethod
    def tile_for(height: int, width: int, tile: int | None = None) -> int | None:
        """The tile side :meth:`translate` uses for an image of this size, or None when it runs untiled.

        ``tile``: a side in px, ``None`` for automatic (``DEFAULT_TILE`` above ``AUTO_TILE_PIXELS``),
        0 for never. An image no larger than the tile is not tiled.
        """
        if tile is None:
            tile = DEFAULT_TILE if height * width > AUTO_TILE_PIXELS else 0
        return tile if tile and max(height, width) > tile else None

    def translate(self, image: torch.Tensor, tile: int | None = None,
                  progress: bool | Progress | None = None) -> torch.Tensor:
        """One (3, H, W) image, in tiles when :meth:`tile_for` says so.

        Tiling reproduces the untiled output (see :mod:`anime_core.inference.tiling`); what it did,
        and why it was approximate if it was, is left in :attr:`last_tiling`. ``progress``: a
        ``(done, total)`` callback over tiles x segments, or True for a tqdm bar (off by default).
        """
        source = getattr(self, "tile_source", None)
        tiled = source is not None and self.tile_for(*image.shape[-2:], tile) is not None
        with (source.pipe if tiled else self).speed_scope():  # tiles: torch's norms between the graph's segments
            return self._translate(image, tile, progress)

    def _translate(self, image: torch.Tensor, tile: int | None,
                   progress: bool | Progress | None = None) -> torch.Tensor:
        _, h, w = image.shape
        self.last_tiling: TilingReport | None = None
        side = self.tile_for(h, w, tile)
        if side is None:
            return self.forward(image.unsqueeze(0))[0]
        plan = self._tile_plan(h, w, side)
        if isinstance(plan, str):  # the generator could not be analysed and has no norms: blended tiles
            overlap = min(side // 2, max(MIN_OVERLAP, side // 8))
            side = max(self.stride, side // self.stride * self.stride)
            overlap = max(self.stride, -(-overlap // self.stride) * self.stride)
            self.last_tiling = TilingReport(0, 1, overlap, [plan])
            return run_tiled(self.forward, image, side, overlap, scale=self.out_scale)
        model: TranslatePipeline = self
        net = None
        scope: Any = nullcontext()
        source = getattr(self, "tile_source", None)  # a graph made from a torch pipeline: its segments, exact
        if source is not None and source.on_torch(self.precision):
            model, scope = source.pipe, source.pipe.running_in(self.precision)  # the torch pipeline, same precision
        elif source is not None and not (plan.contexts and sweep_need(source.pipe, plan) > max_memory()):
            # (above the budget a shrunk copy gives the statistics, whose plan may compute other modules whole
            # than this cut export's: its tiles run on the torch pipeline)
            model, net = source.pipe, source.net(plan)
        elif source is not None:
            model = source.pipe
        with scope:
            return self._sweep(model, net, image, side, plan, progress)

    def _sweep(self, model: TranslatePipeline, net: Any, image: torch.Tensor, side: int, plan: TilePlan,
               progress: bool | Progress | None) -> torch.Tensor:
        """``run_faithful`` of ``model`` (``net``: what its tiles run) with a tqdm bar for ``progress=True``."""
        if progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(layout(plan)) * segments(plan), unit="tile", desc="tiles", leave=False,
                       dynamic_ncols=True)
            try:
                out, self.last_tiling = run_faithful(model, image, side, plan, lambda done, _: bar.update(done - bar.n),
                                                     net)
            finally:
                bar.close()
            return self.controls.apply(out.unsqueeze(0), image.unsqueeze(0))[0]  # the tiles ran without them
        out, self.last_tiling = run_faithful(model, image, side, plan, progress or None, net)
        return self.controls.apply(out.unsqueeze(0), image.unsqueeze(0))[0]  # the tiles ran without them

    def tiling_cost(self, height: int, width: int, tile: int | None = None) -> float:
        """Time of :meth:`translate` relative to one untiled forward of the same image (1.0 untiled).

        The tiles' pixels (halos included) per image pixel, from the plan (shapes only; cached).
        """
        side = self.tile_for(height, width, tile)
        if side is None:
            return 1.0
        plan = self._tile_plan(height, width, side)
        return 1.0 if isinstance(plan, str) else tiling_cost(plan)

    def _tile_plan(self, h: int, w: int, side: int) -> TilePlan | str:
        """The plan for this size (cached: video frames share it), or why there is none.

        A generator that cannot be traced is tiled with blended tiles only when it has no norm
        layers (they would be normalised per tile); otherwise this raises ``BadImage`` saying how
        to run it: whole (``--tile 0``) or with a backend that tiles exactly. A graph made from a
        torch pipeline (``tile_source``, :mod:`~anime_core.inference.backends.onnx_segments`) tiles
        with that pipeline's plan.
        """
        source = getattr(self, "tile_source", None)
        if source is not None:
            return source.pipe._tile_plan(h, w, side)  # type: ignore[no-any-return]
        cache: dict[tuple[int, int, int], TilePlan | str] = self.__dict__.setdefault("_tile_plans", {})
        key = (h, w, side)
        opaque = getattr(self.generator, "opaque", None)  # e.g. an ONNX Runtime session: no layers to see
        if opaque:
            raise io.BadImage(f"{w}x{h} px needs tiles, and {opaque}; use --tile 0 to run it whole "
                              "(memory grows with the image) or --backend torch")
        if key not in cache:
            channels = int(self.preprocess(torch.zeros(1, 3, 2, 2, device=self.device)).shape[1])
            try:
                cache[key] = plan_tiles(self.generator, channels, torch.float32, (h, w), side, self.stride)
            except Exception as exc:  # any generator code (a .item(), numpy) may refuse meta tensors
                if any(norm_spec(m) is not None for m in self.generator.modules()):
                    raise io.BadImage(
                        f"{w}x{h} px needs tiles, and {self.spec.name}'s generator could not be traced on shapes "
                        f"alone ({type(exc).__name__}), so its norms cannot be gathered across tiles; use --tile 0 "
                        "to run it whole") from None
                cache[key] = (f"the generator could not be traced on shapes alone ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); it has no norm layers, so "
                              "blended tiles are exact while its receptive field is under a quarter of the overlap")
            while len(cache) > 4:
                cache.pop(next(iter(cache)))
        return cache[key]

    def crops(self) -> bool:
        """Whether :meth:`prepare` centre-crops to a square.

        The ``crop`` option if given (``anime run --crop/--no-crop``, ``load(..., crop=False)``), else
        the style's ``center_crop`` preset; ``no_crop=True`` is the older spelling of ``crop=False``.
        """
        crop = self.options.get("crop")
        if crop is None:
            return bool(self.defaults.get("center_crop")) and not self.options.get("no_crop")
        return bool(crop)

    def crop_notice(self, size: int | None = None) -> str | None:
        """One line for ``anime run`` when every image will be cropped to a square, saying why and how not to."""
        if not self.crops():
            return None
        side = size or self.defaults.get("size")
        to = f"resized to {side}x{side} px" if side else "its short side"
        why = "--crop" if self.options.get("crop") else "the style's preset: it was trained on square crops"
        keep = f"long side {side} px" if side else "its own size"
        return (f"cropping every image to its centre square, {to} ({why}); --no-crop keeps the whole picture "
                f"({keep})")

    def prepared_size(self, width: int, height: int, size: int | None = None) -> tuple[int, int]:
        """The (w, h) :meth:`prepare` makes of a ``width`` x ``height`` image (computed, nothing allocated)."""
        return io.resized_size(width, height, size or self.defaults.get("size"), self.crops())

    def prepare(self, img: Image.Image, size: int | None = None) -> Image.Image:
        """Apply the resize policy: ``size`` (long side), else the style's defaults."""
        return io.resize_long_side(img, size or self.defaults.get("size"), center_crop=self.crops())

    def __call__(self, image: Any, size: int | None = None, tile: int | None = None,
                 max_pixels: int = io.DEFAULT_MAX_PIXELS) -> Any:
        """Translate ``image``, answered in its own kind: a path or PIL image gives a PIL image, an HWC numpy
        array (uint8, or float in [0, 1]) an array of its dtype, a CHW/NCHW torch tensor a tensor of its dtype
        on its device, a list a list (:mod:`anime_core.inference.inputs`). ``size``: the long side in px;
        ``tile``: see :meth:`tile_for`; ``max_pixels``: larger inputs and resizes are refused (``BadImage``).
        """

        return translate_any(self, image, size, tile, max_pixels)

    def run_mode(self, request: RunRequest) -> ModeOutput | None:
        return None

    def parity_sample(self) -> torch.Tensor:
        """The shipped real photo (256x187) through :meth:`forward`."""

        return self.forward(auto.parity_photo()[None])


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
        """Generator output in [-1, 1] -> [0, 1]; non-finite values stay NaN for :func:`check_finite`."""
        y = y.float()
        return ((torch.where(torch.isfinite(y), y, torch.nan) + 1) / 2).clamp(0, 1)

    @torch.inference_mode()
    def decode_latents(self, z: torch.Tensor, batch_size: int = 64, **kwargs: Any) -> torch.Tensor:
        """(N, latent_dim) -> (N, 3, H, W) in [0, 1] on the CPU."""
        outs = []
        for chunk in z.split(batch_size):
            self._autotune(chunk)
            with self.speed_scope(), self.autocast():
                outs.append(self.postprocess(self.generator(chunk.to(self.device), **kwargs)).cpu())
        return torch.cat(outs)

    def generate(self, n: int = 16, seed: int = 0, **kwargs: Any) -> list[Image.Image]:
        images = self.decode_latents(self.latents(n, seed), **kwargs)
        check_finite(images, f"seed {seed}")
        return [io.to_image(x) for x in images]

    def grid(self, images: Sequence[torch.Tensor] | torch.Tensor, nrow: int | None = None) -> Image.Image:
        batch = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
        return io.grid(batch, nrow or max(1, math.ceil(math.sqrt(len(batch)))))

    def parity_sample(self) -> torch.Tensor:
        """Images from seed 0's latents."""

        return self.decode_latents(self.latents(auto.PARITY_LATENTS, 0))

    def run_mode(self, request: RunRequest) -> ModeOutput | None:
        """A grid of ``request.num`` samples from ``request.seed``."""
        if request.inputs:
            raise UsageError(
                f"'{self.spec.name}' generates images from noise and takes no input files; use --num and --seed"
            )
        images = self.decode_latents(self.latents(request.num, request.seed), batch_size=request.batch_size)
        return ModeOutput(images, f"{self.spec.name}-seed{request.seed}", nrow=math.ceil(math.sqrt(request.num)))
