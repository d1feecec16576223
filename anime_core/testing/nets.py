"""Running a model's nets the way its pipeline does, on small inputs, and saying what is wrong."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from anime_core.specs import ModelSpec
from anime_core.testing.report import err

MIN_SIDE = 32  # smallest image side the shape checks use


def tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a net's output (a tensor, or lists/tuples/dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in tensors(o)]
    if isinstance(out, Mapping):
        return [t for o in out.values() for t in tensors(o)]
    return []


def _int_attr(module: nn.Module, attr: str) -> int | None:
    value = getattr(module, attr, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def _translate_input(stride: int) -> torch.Tensor:
    side = stride * math.ceil(MIN_SIDE / stride)
    width = side + stride if stride <= 32 else side  # non-square catches swapped H/W when cheap
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, side, width, generator=gen) * 2 - 1


def _pipeline_scale(cls: type, spec: ModelSpec, gen: nn.Module) -> int:
    """The pipeline's ``out_scale`` for this generator (a class attribute or a property reading the net)."""
    scale = inspect.getattr_static(cls, "out_scale", 1)
    if isinstance(scale, int):
        return scale
    try:
        return int(cls(spec, {"generator": gen}, device="cpu").out_scale)
    except Exception:
        return int(getattr(gen, "out_scale", getattr(gen, "scale", 1)))


@torch.no_grad()
def run_generator(spec: ModelSpec, gen: Any, what: str) -> tuple[torch.Tensor | None, list[str]]:
    """Forward one input through ``gen`` as the model's pipeline does; ``(raw output, problems)``.

    translate: the pipeline's ``forward`` maps a [0, 1] RGB batch (sides multiples of ``stride``) to
    ``(1, 3, H*s, W*s)`` in [0, 1]; its ``preprocess`` decides what the generator sees (RGB in
    [-1, 1] by default; e.g. a lightness channel for a colourisation model).
    generate: ``(1, latent_dim)`` -> ``(1, 3, H, W)``.
    """
    if not isinstance(gen, nn.Module):
        return None, [f"{what} builder returned {type(gen).__name__}, not an nn.Module"]
    gen.eval()
    if spec.kind == "generate":
        return _run_generate(gen, what)
    from anime_core.inference.pipeline import TranslatePipeline

    stride = _int_attr(gen, "stride")
    if stride is None:
        return None, [f"{what} ({type(gen).__name__}) has no int attribute 'stride' >= 1"]
    x = (_translate_input(stride) + 1) / 2
    cls = spec.pipeline_class() or TranslatePipeline
    try:
        pipe = cls(spec, {"generator": gen}, device="cpu")
    except Exception as exc:
        return None, [f"{what}: pipeline {cls.__name__} does not construct ({err(exc)})"]
    scale = _pipeline_scale(cls, spec, gen)
    expected = (1, 3, x.shape[2] * scale, x.shape[3] * scale)
    try:
        out = pipe.forward(x)
        y = gen(pipe.preprocess(x))
    except Exception as exc:
        return None, [f"{what} forward on a {tuple(x.shape)} image failed ({err(exc)})"]
    if tuple(out.shape) != expected:
        return None, [f"{what} maps {tuple(x.shape)} to {tuple(out.shape)}, expected {expected}"]
    if not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        return None, [f"{what} pipeline output is not finite and within [0, 1]"]
    raw = tensors(y)
    return (raw[0] if raw else None), []


def _run_generate(gen: nn.Module, what: str) -> tuple[torch.Tensor | None, list[str]]:
    latent = _int_attr(gen, "latent_dim")
    if latent is None:
        return None, [f"{what} ({type(gen).__name__}) has no int attribute 'latent_dim' >= 1"]
    z = torch.randn(1, latent, generator=torch.Generator().manual_seed(0))
    try:
        y = gen(z)
    except Exception as exc:
        return None, [f"{what} forward on a {tuple(z.shape)} latent failed ({err(exc)})"]
    shape = tuple(y.shape) if isinstance(y, torch.Tensor) else None
    if shape is None or len(shape) != 4 or shape[:2] != (1, 3):
        return None, [f"{what} maps {tuple(z.shape)} to {shape or type(y).__name__}, expected (1, 3, H, W)"]
    if not torch.isfinite(y).all():
        return None, [f"{what} output has NaN or inf values"]
    return y, []


@torch.no_grad()
def run_discriminator(disc: Any, image: torch.Tensor, what: str) -> list[str]:
    """The discriminator takes the generator's output and returns finite tensors."""
    if not isinstance(disc, nn.Module):
        return [f"{what} builder returned {type(disc).__name__}, not an nn.Module"]
    disc.eval()
    try:
        out = disc(image)
    except Exception as exc:
        return [f"{what} failed on the generator's {tuple(image.shape)} output ({err(exc)})"]
    found = tensors(out)
    if not found:
        return [f"{what} returned {type(out).__name__}, expected a tensor or a list of tensors"]
    if not all(torch.isfinite(t).all() for t in found):
        return [f"{what} output has NaN or inf values"]
    return []

