"""anime-core hooks of the ``animegan`` model (Liu, Chen & Hu, AnimeGAN) and its AnimeGANv2 styles."""

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
from anime_plugin_animegan.converters import LAYOUT_V2, convert_v2, matches_v2
from anime_plugin_animegan.data import build_dataset
from anime_plugin_animegan.discriminator import build_discriminator
from anime_plugin_animegan.generator import build_generator, build_v1, build_v2
from anime_plugin_animegan.losses import AnimeGANDiscriminatorLoss, ColorYUVLoss, GramGrayscaleLoss, VGGContentLoss
from anime_plugin_animegan.prepare import prepare
from anime_plugin_animegan.styles import styles
from anime_plugin_animegan.task import AnimeGANTask

CONFIGS = Path(__file__).parent / "configs"
PRESETS = ("adv250", "adv350", "col50", "no-gray-adv", "v2")
PAPER = (
    "G. Liu, X. Chen, Y. Hu. AnimeGAN: a novel lightweight GAN for photo animation. ISICA 2019, "
    "Communications in Computer and Information Science 1205 (Springer, 2020)."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("animegan", build_generator, "AnimeGAN generator, variant=v1 (paper) | v2 (AnimeGANv2)"),
        GeneratorSpec("animegan.v1", build_v1, "AnimeGAN generator of the paper, 3,956,096 parameters (3.1, Fig. 1)"),
        GeneratorSpec("animegan.v2", build_v2, "AnimeGANv2 generator in the PyTorch weights layout, 2,143,552 params"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [DiscriminatorSpec("animegan.d", build_discriminator, "CartoonGAN patch D with spectral norm (3.1)")]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("vgg_content", VGGContentLoss, "L1 of VGG19 conv4_4 features (AnimeGAN eq. 2)"),
        LossSpec("gram_grayscale", GramGrayscaleLoss, "L1 of Gram matrices vs. the grayscale style image (eq. 3)"),
        LossSpec("color_yuv", ColorYUVLoss, "YUV colour reconstruction: L1 on Y, Huber on U, V (eq. 4)"),
        LossSpec("animegan_d", AnimeGANDiscriminatorLoss, "LSGAN D loss with grayscale and 0.1 edge terms (eq. 6)"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("animegan", build_dataset, "photos + anime frames + prepared gray/edge-smoothed copies")]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "animegan",
            "translate",
            generator="animegan",
            discriminator="animegan.d",
            task=AnimeGANTask,
            config=CONFIGS / "default.yaml",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            losses=("lsgan", "vgg_content", "gram_grayscale", "color_yuv", "animegan_d"),
            dataset="animegan",
            paper=PAPER,
            description="lightweight photo -> anime GAN (grayscale style, colour and grayscale adversarial losses)",
            prepare=prepare,
        )
    ]


@hookimpl
def anime_register_styles() -> list[StyleSpec]:
    return styles()


@hookimpl
def anime_weights_converters() -> list[WeightsConverter]:
    return [WeightsConverter(LAYOUT_V2, "animegan", matches_v2, convert_v2,
                             "AnimeGANv2 PyTorch state dicts (block_a.0.1.weight ... out_layer.0.weight)")]
