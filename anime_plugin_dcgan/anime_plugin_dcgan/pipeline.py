"""Inference for the plugin's models.

``DCGANPipeline`` (``anime run dcgan``): seeded grids as the core does, plus
``--class NAME`` (class-conditional weights record their class names in the generator options),
``--truncation T`` (truncated normal latents: entries with ``|z| > T`` are redrawn, the
"truncation trick" of BigGAN, Brock et al. 2019, section 3.1) and ``--interpolate N`` (a strip of
N images on the great circle between the latents of ``--seed`` and ``--seed + 1``; spherical
interpolation suits Gaussian latents, White 2016). Same seed and options, same image.

``SRPipeline`` (``anime run pixelsake-sr``): the core's translate pipeline with ``out_scale`` = 4.
"""

from __future__ import annotations

from typing import Any

import torch

from anime_core.errors import UsageError
from anime_core.inference.modes import ModeOutput, RunRequest
from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline


def truncated_normal(shape: tuple[int, ...], threshold: float | None, gen: torch.Generator) -> torch.Tensor:
    """Standard normal samples; with ``threshold`` every entry with ``|z| > threshold`` is redrawn."""
    z = torch.randn(shape, generator=gen)
    if threshold is not None:
        bad = z.abs() > threshold
        while bad.any():
            z[bad] = torch.randn(int(bad.sum()), generator=gen)
            bad = z.abs() > threshold
    return z


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows ``a`` and ``b`` (1, D) at fractions ``t`` (N,)."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1, 1))
    t = t[:, None]
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


class DCGANPipeline(GeneratePipeline):
    """See the module docstring; ``generate(n, seed)`` honours the same options."""

    @property
    def num_classes(self) -> int:
        return int(getattr(self.generator, "num_classes", 0) or 0)

    def class_index(self, name: str) -> int:
        names = list(getattr(self.generator, "class_names", []) or [])
        if name in names:
            return names.index(name)
        if name.isdigit() and int(name) < self.num_classes:
            return int(name)
        known = ", ".join(names) if names else f"0..{self.num_classes - 1}"
        raise UsageError(f"unknown class '{name}'; these weights know: {known}")

    def labels(self, n: int) -> torch.Tensor | None:
        """``--class`` for every image, else the classes in turn; None for an unconditional model."""
        name = self.options.get("class_name")
        if not self.num_classes:
            if name is not None:
                raise UsageError("--class needs class-conditional weights (trained with data.conditional=true)")
            return None
        if name is not None:
            return torch.full((n,), self.class_index(str(name)), dtype=torch.long)
        return torch.arange(n) % self.num_classes

    def latents(self, n: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return truncated_normal((n, self.latent_dim), self.options.get("truncation"), gen)

    @torch.inference_mode()
    def decode_latents(self, z: torch.Tensor, batch_size: int = 64, **kwargs: Any) -> torch.Tensor:
        label = kwargs.pop("label", None)
        if label is None:
            label = self.labels(len(z))
        outs = []
        for i in range(0, len(z), batch_size):
            lab = None if label is None else label[i: i + batch_size].to(self.device)
            with self.autocast():
                y = self.generator(z[i: i + batch_size].to(self.device), lab, **kwargs)
            outs.append(self.postprocess(y).cpu())
        return torch.cat(outs)

    def walk(self, steps: int, seed: int) -> torch.Tensor:
        """``steps`` latents from the latent of ``seed`` to that of ``seed + 1``."""
        a, b = self.latents(1, seed), self.latents(1, seed + 1)
        return slerp(a, b, torch.linspace(0, 1, steps))

    def run_mode(self, request: RunRequest) -> ModeOutput | None:
        """``--interpolate N``: one strip of the walk from ``--seed`` to ``--seed + 1``; else the core's grid."""
        steps = self.options.get("interpolate")
        if not steps:
            return super().run_mode(request)
        if request.inputs:
            raise UsageError(f"'{self.spec.name}' generates images from noise and takes no input files")
        images = self.decode_latents(self.walk(int(steps), request.seed), batch_size=request.batch_size)
        return ModeOutput(images, f"{self.spec.name}-walk-seed{request.seed}", nrow=int(steps))


class SRPipeline(TranslatePipeline):
    """4x super-resolution: outputs are ``out_scale`` times the input size."""

    @property
    def out_scale(self) -> int:  # type: ignore[override]
        return int(getattr(self.generator, "scale", 4))
