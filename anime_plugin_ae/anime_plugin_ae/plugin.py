"""anime-core hooks of the ``ae`` model (S. Abbas et al., "Ordinary to Anime: An Artistic &
Technical Inquiry using Auto Encoders", autoencoders).

An entry-point module: it imports no torch. Builders, the loss, the dataset kind, the schema, the
task and the pipeline are named by ``"module:attribute"`` references that the core imports when
they are used.
"""

from __future__ import annotations

from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import DatasetSpec, GeneratorSpec, LossSpec, ModelSpec
from anime_plugin_ae.options import RUN_OPTIONS

PKG = "anime_plugin_ae"
CONFIGS = Path(__file__).parent / "configs"
PRESETS = ("rgb", "skip", "vae")
PAPER = (
    "S. Abbas, A. Maaz, T. Ahmad, Abubakar. Ordinary to Anime: An Artistic & Technical Inquiry using "
    "Auto Encoders (GIKI), sections II.B-II.D, Table III."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("ae.lab", f"{PKG}.generator:build_lab", "L -> a*b* convolutional autoencoder (II.D)"),
        GeneratorSpec("ae.rgb", f"{PKG}.generator:build_rgb", "RGB -> RGB autoencoder (I.C, research question 2)"),
        GeneratorSpec("ae.skip", f"{PKG}.generator:build_skip", "L -> a*b* with U-Net skip connections"),
        GeneratorSpec("ae.vae", f"{PKG}.generator:build_vae", "variational L -> a*b* autoencoder"),
    ]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [LossSpec("ae.kl", f"{PKG}.losses:GaussianKL", "KL of a Gaussian posterior from N(0, I), mean (vae)")]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("ae.paired", f"{PKG}.data:paired_split",
                        "paired folders with a seeded validation split (train=False) and optional denoising",
                        keys=("data.photo", "data.anime"))]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "ae",
            "translate",
            generator="ae",
            variant_key="variant",  # its networks: the ae.<variant> generators above
            task=f"{PKG}.task:AETask",
            config=CONFIGS / "default.yaml",
            schema=f"{PKG}.config:AEConfig",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            dataset="ae.paired",
            paper=PAPER,
            description="paired photo -> anime colouring autoencoder (L -> a*b*), --strength, VAE --interpolate",
            pipeline=f"{PKG}.pipeline:AEPipeline",
            run_options=RUN_OPTIONS,
        )
    ]
