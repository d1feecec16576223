"""anime-core hooks of the ``cyclegan`` model (Sharma & Das, CycleGAN with U-Net and self-attention)."""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import DiscriminatorSpec, GeneratorSpec, LossSpec, ModelSpec
from anime_plugin_cyclegan.discriminator import build_patchgan
from anime_plugin_cyclegan.generator import build_generator, build_resnet, build_unet
from anime_plugin_cyclegan.losses import CycleLoss, IdentityLoss
from anime_plugin_cyclegan.pipeline import DIRECTION_OPTION, CycleGANPipeline
from anime_plugin_cyclegan.task import CycleGANTask

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
        GeneratorSpec("cyclegan", build_generator, "U-Net or ResNet CycleGAN generator (arch=unet|resnet)"),
        GeneratorSpec("cyclegan.unet", build_unet, "8-level U-Net, self-attention none|down|up|both (paper 3.5.1)"),
        GeneratorSpec("cyclegan.resnet", build_resnet, "ResNet-n_blocks generator, optional attention (Table 2)"),
    ]


@hookimpl
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    return [DiscriminatorSpec("cyclegan.patchgan", build_patchgan, "70x70 PatchGAN, optional self-attention")]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("cycle_l1", CycleLoss, "cycle consistency |F(G(x))-x|_1 + |G(F(y))-y|_1 (CycleGAN eq. 2)"),
        LossSpec("identity_l1", IdentityLoss, "identity |G(y)-y|_1 + |F(x)-x|_1 (CycleGAN eq. 4)"),
    ]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "cyclegan",
            "translate",
            generator="cyclegan",
            discriminator="cyclegan.patchgan",
            task=CycleGANTask,
            config=CONFIGS / "default.yaml",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            losses=("lsgan", "bce", "cycle_l1", "identity_l1"),
            dataset="unpaired",
            paper=PAPER,
            description="unpaired photo <-> anime CycleGAN with U-Net + self-attention or ResNet generators",
            pipeline=CycleGANPipeline,
            run_options=(DIRECTION_OPTION,),
        )
    ]
