"""Hook implementations of the dcgan plugin: builders, the ``sr_pairs`` dataset kind and two models."""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import DatasetSpec, DiscriminatorSpec, GeneratorSpec, ModelSpec

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"

PAPER_001 = ("S. Begum et al., \"Anime face generating using deep learning\", section 3 (DCGAN recipe)")
PAPER_002 = ("A. Shrivastava, V. Gautam, N. Patel, S. Sharma, M. Kadwal, \"PixelSake: Deep Convolution "
             "Generative Adversarial Network\"")


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    from anime_plugin_dcgan.generator import DCGANGenerator
    from anime_plugin_dcgan.sr import SRGenerator

    return [
        GeneratorSpec("dcgan.g", DCGANGenerator, "DCGAN generator z(100) -> 64x64 (128/256, attention, classes)"),
        GeneratorSpec("pixelsake-sr.g", SRGenerator, "4x super-resolution: residual blocks + pixel shuffle"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    from anime_plugin_dcgan.discriminator import build_discriminator

    return [
        DiscriminatorSpec("dcgan.d", build_discriminator, "DCGAN discriminator (SN, multi-scale, projection)"),
        DiscriminatorSpec("pixelsake-sr.d", build_discriminator, "DCGAN discriminator on 128 px high-res crops"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    from anime_plugin_dcgan.data import build_sr_pairs

    return [DatasetSpec("sr_pairs", build_sr_pairs, "bicubic 4x down-sampled pairs of data.anime, held-out split")]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    from anime_plugin_dcgan.pipeline import RUN_OPTIONS, DCGANPipeline, SRPipeline
    from anime_plugin_dcgan.sr_task import SRTask
    from anime_plugin_dcgan.task import DCGANTask

    return [
        ModelSpec(
            "dcgan", "generate", "dcgan.g", "dcgan.d", task=DCGANTask, config=CONFIGS / "default.yaml",
            presets={"dcgan": CONFIGS / "dcgan.yaml", "pixelsake": CONFIGS / "pixelsake.yaml"},
            losses=("bce", "hinge", "wgan", "lsgan", "feature_matching"), dataset="images",
            paper=f"{PAPER_001}; {PAPER_002}",
            description="Anime faces from noise: DCGAN (preset dcgan) or PixelSake's extensions (preset pixelsake).",
            pipeline=DCGANPipeline, run_options=RUN_OPTIONS,
        ),
        ModelSpec(
            "pixelsake-sr", "translate", "pixelsake-sr.g", "pixelsake-sr.d", task=SRTask, config=CONFIGS / "sr.yaml",
            losses=("l1", "bce"), dataset="sr_pairs", paper=f"{PAPER_002}, section 4 (image enhancer)",
            description="PixelSake's 4x image enhancer (32 -> 128 px), trained on bicubic down-sampled images.",
            pipeline=SRPipeline,
        ),
    ]
