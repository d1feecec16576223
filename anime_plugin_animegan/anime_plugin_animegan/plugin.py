"""anime-core hooks of the ``animegan`` model and its AnimeGANv2 styles.

The model is G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation"
(networks section 3.1, losses 3.2, training 3.3).

An entry-point module: it imports no torch. Builders, losses, the task and the converter are named
by ``"module:attribute"`` references that the core imports when they are used.
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
from anime_plugin_animegan.styles import LAYOUT_V1_TF, LAYOUT_V2, LAYOUT_V2_TF, styles

PKG = "anime_plugin_animegan"
CONFIGS = Path(__file__).parent / "configs"
PRESETS = ("adv250", "adv350", "col50", "no-gray-adv", "edge-color", "v2")
PAPER = (
    "G. Liu, X. Chen, Y. Hu. AnimeGAN: a novel lightweight GAN for photo animation. ISICA 2019, "
    "Communications in Computer and Information Science 1205 (Springer, 2020)."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("animegan.v1", f"{PKG}.generator:build_v1", "AnimeGAN generator of the paper (3.1, Fig. 1)"),
        GeneratorSpec("animegan.v2", f"{PKG}.generator:build_v2", "AnimeGANv2 generator in the PyTorch weights layout"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [DiscriminatorSpec("animegan.d", f"{PKG}.discriminator:build_discriminator", "CartoonGAN patch D, SN (3.1)")]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("vgg_content", f"{PKG}.losses:VGGContentLoss", "L1 of VGG19 conv4_4 features (AnimeGAN eq. 2)"),
        LossSpec("gram_grayscale", f"{PKG}.losses:GramGrayscaleLoss", "L1 of Gram matrices, grayscale style (eq. 3)"),
        LossSpec("color_yuv", f"{PKG}.losses:ColorYUVLoss", "YUV colour: L1 on Y, Huber on U, V (eq. 4)"),
        LossSpec("animegan_d", f"{PKG}.losses:AnimeGANDiscriminatorLoss", "D loss, grayscale and edge terms (eq. 6)"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("animegan", f"{PKG}.data:build_dataset", "photos + anime frames + gray/edge-smoothed copies",
                        keys=("data.photo", "data.anime"))]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "animegan",
            "translate",
            generator="animegan",
            discriminator="animegan.d",
            variant_key="variant",  # its networks: the animegan.<variant> generators above
            task=f"{PKG}.task:AnimeGANTask",
            config=CONFIGS / "default.yaml",
            schema=f"{PKG}.config:AnimeGANConfig",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            dataset="animegan",
            paper=PAPER,
            description="lightweight photo -> anime GAN (grayscale style, colour and grayscale adversarial losses)",
            prepare=f"{PKG}.prepare:prepare",
            default_style="paprika",  # scenes and any photo, uncropped; the face styles crop to a square
        )
    ]


@hookimpl
def anime_register_styles() -> list[StyleSpec]:
    return styles()


@hookimpl
def anime_weights_converters() -> list[WeightsConverter]:
    return [
        WeightsConverter(
            LAYOUT_V2, "animegan", f"{PKG}.converters:matches_v2", f"{PKG}.converters:convert_v2",
            "AnimeGANv2 PyTorch state dicts (block_a.0.1.weight ... out_layer.0.weight)",
            describe=f"{PKG}.converters:describe",
        ),
        WeightsConverter(
            LAYOUT_V1_TF, "animegan", f"{PKG}.converters_tf:matches_v1", f"{PKG}.converters_tf:convert_v1",
            "official AnimeGAN TensorFlow 1 checkpoints (NAME.ckpt.index + .data; generator/G_MODEL/b1/...)",
        ),
        WeightsConverter(
            LAYOUT_V2_TF, "animegan", f"{PKG}.converters_tf:matches_v2", f"{PKG}.converters_tf:convert_v2",
            "official AnimeGANv2 TensorFlow 1 checkpoints (generator/G_MODEL/A/...)",
        ),
        WeightsConverter(
            "animegan.pytorch-animegan-v2", "animegan", f"{PKG}.converters:matches_ptran_v2",
            f"{PKG}.converters:convert_ptran_v2",
            "pytorch-animeGAN GeneratorV2_*.pt (model_state_dict: conv_block1.0.conv.weight ... decode_blocks.0.bias)",
        ),
    ]


def contract_samples() -> dict:
    """Foreign-layout samples for the contract test (``anime_core.testing``), built on use."""
    from anime_plugin_animegan import converters, converters_tf

    return {**converters.contract_samples(), **converters_tf.contract_samples()}
