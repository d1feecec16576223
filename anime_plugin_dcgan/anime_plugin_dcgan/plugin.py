"""anime-core hooks of the dcgan plugin: the ``dcgan`` face generator and the ``pixelsake-sr`` enhancer.

``dcgan`` follows the DCGAN recipe of Begum et al., "Anime face generating using deep learning"
(section 3.2), with the extensions of Shrivastava et al., "PixelSake: Deep Convolution Generative
Adversarial Network"; ``pixelsake-sr`` is PixelSake's 4x image enhancer (section 4), in the
subpackage ``anime_plugin_dcgan.sr``.

An entry-point module: it imports no torch. Builders, losses, the tasks, schemas and the pipelines
are named by ``"module:attribute"`` references that the core imports when they are used.
"""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import (
    DatasetSpec,
    DiscriminatorSpec,
    GeneratorSpec,
    LossSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
)
from anime_plugin_dcgan.options import RUN_OPTIONS
from anime_plugin_dcgan.styles import styles

PKG = "anime_plugin_dcgan"
SR = f"{PKG}.sr"
CONFIGS = Path(__file__).parent / "configs"
BEGUM = 'S. M. Begum et al., "Anime face generating using deep learning", section 3.2 (DCGAN recipe)'
PIXELSAKE = ('A. Shrivastava, V. Gautam, N. Patel, S. Sharma, M. Kadwal, "PixelSake: Deep Convolution '
             'Generative Adversarial Network"')


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("dcgan", f"{PKG}.generator:build_generator", "DCGAN z -> 64 px (128/256, attention, classes)"),
        GeneratorSpec("pixelsake-sr", f"{SR}.generator:build_generator",
                      "4x super-resolution: residual blocks + pixel shuffle"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [
        DiscriminatorSpec("dcgan.d", f"{PKG}.discriminator:build_discriminator", "DCGAN D (SN, multi-scale, classes)"),
        DiscriminatorSpec("pixelsake-sr.d", f"{SR}.discriminator:build_discriminator", "DCGAN D on 128 px crops"),
    ]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("mean_feature_matching", f"{PKG}.losses:MeanFeatureMatchingLoss",
                 "L1 between batch means of real and fake features (Salimans et al. 3.1)"),
        LossSpec("content_l2", f"{PKG}.losses:ContentL2Loss", "pixel MSE to the real batch (Begum et al. 3.2.3)"),
        LossSpec("vgg_perceptual", f"{PKG}.losses:VGGPerceptual",
                 "VGG19 feature loss: per-pair L1 (mode=pairs) or batch-mean matching (mode=means)"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("sr_pairs", f"{SR}.data:build_sr_pairs", "bicubic 4x down-sampled pairs of data.anime",
                        keys=("data.anime",))]


@hookimpl
def anime_register_styles() -> list[StyleSpec]:
    return styles()


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "dcgan", "generate", "dcgan", "dcgan.d", task=f"{PKG}.task:DCGANTask", config=CONFIGS / "default.yaml",
            schema=f"{PKG}.config:DCGANConfig",
            presets={"dcgan": CONFIGS / "dcgan.yaml", "pixelsake": CONFIGS / "pixelsake.yaml"},
            dataset="images", paper=f"{BEGUM}; {PIXELSAKE}",
            description="Anime faces from noise: DCGAN (preset dcgan) or PixelSake's extensions (preset pixelsake).",
            pipeline=f"{PKG}.pipeline:DCGANPipeline", run_options=RUN_OPTIONS,
        ),
        ModelSpec(
            "pixelsake-sr", "translate", "pixelsake-sr", "pixelsake-sr.d", task=f"{SR}.task:SRTask",
            config=CONFIGS / "sr.yaml", schema=f"{SR}.config:SRConfig",
            dataset="sr_pairs", paper=f"{PIXELSAKE}, section 4 (image enhancer)",
            description="PixelSake's 4x image enhancer (32 -> 128 px), trained on bicubic down-sampled images.",
            pipeline=f"{PKG}.pipeline:SRPipeline",
        ),
    ]


@hookimpl
def anime_weights_converters() -> list[WeightsConverter]:
    return [
        WeightsConverter(
            "dcgan.pytorch-examples", "dcgan",
            f"{PKG}.converters:matches_generator", f"{PKG}.converters:convert_generator",
            "PyTorch examples DCGAN generators (netG_epoch_N.pth: main.0.weight ... main.12.weight)",
            describe=f"{PKG}.converters:describe",
        )
    ]


def contract_samples() -> dict:
    """A small state dict in each foreign layout, for the plugin contract test (imports torch when called)."""
    from anime_plugin_dcgan.converters import contract_samples as samples

    return samples()
