"""anime-core hooks of the ``cyclegan`` model: Sharma & Das, "A CycleGAN Framework for Anime Style Image
Synthesis based on U-Net and Self-Attention".

An entry-point module: it imports no torch. Builders, losses, the dataset, the config schema, the
task and the pipeline are named by ``"module:attribute"`` references that the core imports when
they are used.
"""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import DatasetSpec, DiscriminatorSpec, GeneratorSpec, LossSpec, ModelSpec, WeightsConverter
from anime_plugin_cyclegan.options import RUN_OPTIONS

PKG = "anime_plugin_cyclegan"
CONFIGS = Path(__file__).parent / "configs"
PRESETS = (
    "unet", "unet-attention-down", "unet-attention-up", "unet-attention-both",
    "resnet9", "resnet9-attention", "resnet8", "resnet8-attention",
)
PAPER = (
    "H. Sharma, S. Das. A CycleGAN Framework for Anime Style Image Synthesis based on U-Net and "
    "Self-Attention. National Institute of Technology Agartala (accepted 21/08/2025); CycleGAN recipe "
    "as reviewed in Begum et al., Anime face generating using deep learning, section 2.5; "
    "Zhu et al., Unpaired image-to-image translation using cycle-consistent adversarial networks, ICCV 2017."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("cyclegan.unet", f"{PKG}.generator:build_unet", "8-level U-Net, attention none|down|up|both"),
        GeneratorSpec("cyclegan.resnet", f"{PKG}.generator:build_resnet", "ResNet generator, optional attention"),
        GeneratorSpec(
            "cyclegan.pix2pix-unet", f"{PKG}.generator:build_pix2pix_unet", "the CycleGAN/pix2pix code's U-Net"
        ),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [
        DiscriminatorSpec("cyclegan.d", f"{PKG}.discriminator:build_discriminator", "70x70 PatchGAN, opt. attention")
    ]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("cycle_l1", f"{PKG}.losses:CycleLoss", "cycle consistency |F(G(x))-x|_1 + |G(F(y))-y|_1 (eq. 2)"),
        LossSpec("identity_l1", f"{PKG}.losses:IdentityLoss", "identity |G(y)-y|_1 + |F(x)-x|_1 (CycleGAN eq. 4)"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("cyclegan", f"{PKG}.data:build_dataset", "unpaired photos + anime, resize/crop/flip/jitter",
                        keys=("data.photo", "data.anime"))]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "cyclegan",
            "translate",
            generator="cyclegan",
            discriminator="cyclegan.d",
            variant_key="arch",  # its networks: the cyclegan.<arch> generators above (--variant or --arch)
            task=f"{PKG}.task:CycleGANTask",
            config=CONFIGS / "default.yaml",
            schema=f"{PKG}.config:CycleGANConfig",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            dataset="cyclegan",
            paper=PAPER,
            description="unpaired photo <-> anime CycleGAN with U-Net + self-attention or ResNet generators",
            pipeline=f"{PKG}.pipeline:CycleGANPipeline",
            run_options=RUN_OPTIONS,
        )
    ]


@hookimpl
def anime_weights_converters() -> list[WeightsConverter]:
    return [
        WeightsConverter(
            "cyclegan.pytorch-resnet", "cyclegan",
            f"{PKG}.converters:matches_resnet", f"{PKG}.converters:convert_resnet",
            "CycleGAN/pix2pix PyTorch ResNet generators (latest_net_G_A.pth: model.1.weight ... model.26.weight)",
            describe=f"{PKG}.converters:describe",
        ),
        WeightsConverter(
            "cyclegan.pytorch-unet", "cyclegan",
            f"{PKG}.converters:matches_unet", f"{PKG}.converters:convert_unet",
            "CycleGAN/pix2pix PyTorch U-Nets (unet_256/unet_128, model.model.1.model.3...), arch=pix2pix-unet",
        ),
    ]


def contract_samples() -> dict:
    """A small state dict in each foreign layout, for the plugin contract test (imports torch when called)."""
    from anime_plugin_cyclegan.converters import contract_samples as samples

    return samples()
