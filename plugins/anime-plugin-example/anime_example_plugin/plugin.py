"""anime-core hooks of the example plugin (entry point ``example`` in group ``anime.plugins``).

Registers one model of its own, ``faststyle`` (Johnson et al. 2016), with its generator, losses,
training task, typed config and defaults: the smallest complete model plugin.

An entry-point module imports no torch: it is loaded by ``anime --help`` and ``anime list``, which
must answer before torch could load. Code is named by ``"package.module:attribute"`` references
that the core imports when it is used.
"""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import GeneratorSpec, LossSpec, ModelSpec

PKG = "anime_example_plugin"
CONFIGS = Path(__file__).parent / "configs"
PAPER = (
    "J. Johnson, A. Alahi, L. Fei-Fei. Perceptual Losses for Real-Time Style Transfer and "
    "Super-Resolution. ECCV 2016, arXiv:1603.08155."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [GeneratorSpec("faststyle", f"{PKG}.generator:build_generator", "Johnson et al. transform net, stride 4")]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("gram_style", f"{PKG}.losses:GramStyleLoss", "MSE of normalised Gram matrices (Johnson eq. 3-4)"),
        LossSpec("total_variation", f"{PKG}.losses:TotalVariationLoss", "squared total variation (Johnson et al. 3.3)"),
    ]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "faststyle",
            "translate",
            generator="faststyle",
            task=f"{PKG}.task:FastStyleTask",
            config=CONFIGS / "default.yaml",
            schema=f"{PKG}.config:FastStyleConfig",
            presets={"small": CONFIGS / "small.yaml"},
            dataset="images",
            paper=PAPER,
            description="real-time style transfer: one feed-forward network per style image (perceptual losses)",
        )
    ]
