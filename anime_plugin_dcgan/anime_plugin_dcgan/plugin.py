"""anime-core hooks of the dcgan plugin: the ``dcgan`` face generator and the ``pixelsake-sr`` enhancer.

``dcgan`` follows the DCGAN recipe of Begum et al., "Anime face generating using deep learning"
(section 3), with the extensions of Shrivastava et al., "PixelSake: Deep Convolution Generative
Adversarial Network"; ``pixelsake-sr`` is PixelSake's 4x image enhancer (section 4).

An entry-point module: it imports no torch. Builders, the tasks and the pipelines are named by
``"module:attribute"`` references that the core imports when they are used.
"""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import DatasetSpec, DiscriminatorSpec, GeneratorSpec, ModelSpec
from anime_plugin_dcgan.options import RUN_OPTIONS

PKG = "anime_plugin_dcgan"
CONFIGS = Path(__file__).parent / "configs"
BEGUM = 'S. Begum et al., "Anime face generating using deep learning", section 3 (DCGAN recipe)'
PIXELSAKE = ('A. Shrivastava, V. Gautam, N. Patel, S. Sharma, M. Kadwal, "PixelSake: Deep Convolution '
             'Generative Adversarial Network"')


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("dcgan", f"{PKG}.generator:DCGANGenerator", "DCGAN z -> 64 px (128/256, attention, classes)"),
        GeneratorSpec("pixelsake-sr", f"{PKG}.sr:SRGenerator", "4x super-resolution: residual blocks + pixel shuffle"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [
        DiscriminatorSpec("dcgan.d", f"{PKG}.discriminator:build_discriminator", "DCGAN D (SN, multi-scale, classes)"),
        DiscriminatorSpec("pixelsake-sr.d", f"{PKG}.discriminator:build_discriminator", "DCGAN D on 128 px crops"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("sr_pairs", f"{PKG}.data:build_sr_pairs", "bicubic 4x down-sampled pairs of data.anime")]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "dcgan", "generate", "dcgan", "dcgan.d", task=f"{PKG}.task:DCGANTask", config=CONFIGS / "default.yaml",
            presets={"dcgan": CONFIGS / "dcgan.yaml", "pixelsake": CONFIGS / "pixelsake.yaml"},
            dataset="images", paper=f"{BEGUM}; {PIXELSAKE}",
            description="Anime faces from noise: DCGAN (preset dcgan) or PixelSake's extensions (preset pixelsake).",
            pipeline=f"{PKG}.pipeline:DCGANPipeline", run_options=RUN_OPTIONS,
        ),
        ModelSpec(
            "pixelsake-sr", "translate", "pixelsake-sr", "pixelsake-sr.d", task=f"{PKG}.sr_task:SRTask",
            config=CONFIGS / "sr.yaml", dataset="sr_pairs", paper=f"{PIXELSAKE}, section 4 (image enhancer)",
            description="PixelSake's 4x image enhancer (32 -> 128 px), trained on bicubic down-sampled images.",
            pipeline=f"{PKG}.pipeline:SRPipeline",
        ),
    ]
