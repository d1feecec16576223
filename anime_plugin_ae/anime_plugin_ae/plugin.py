"""anime-core hooks of the ``ae`` model (Abbas et al., "Ordinary to Anime", autoencoders)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from anime_core import hookimpl
from anime_core.specs import GeneratorSpec, LossSpec, ModelSpec
from anime_plugin_ae.generator import VARIANTS, build_ae
from anime_plugin_ae.losses import GaussianKL
from anime_plugin_ae.pipeline import RUN_OPTIONS, AEPipeline
from anime_plugin_ae.task import AETask

CONFIGS = Path(__file__).parent / "configs"
PRESETS = ("rgb", "skip", "vae")
PAPER = (
    "S. Abbas, A. Maaz, T. Ahmad, Abubakar. Ordinary to Anime: An Artistic & Technical Inquiry using "
    "Auto Encoders (GIKI), sections II.B-II.D, Table III."
)


@hookimpl
def anime_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("ae", build_ae, "convolutional autoencoder, variant=lab|rgb|skip|vae (paper II.D)"),
        *(
            GeneratorSpec(f"ae.{v}", partial(build_ae, variant=v), f"the {v} variant of the ae autoencoder")
            for v in VARIANTS
        ),
    ]


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [LossSpec("ae.kl", GaussianKL, "KL of a Gaussian posterior from N(0, I), mean over elements (vae)")]


@hookimpl
def anime_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            "ae",
            "translate",
            generator="ae",
            task=AETask,
            config=CONFIGS / "default.yaml",
            presets={name: CONFIGS / f"{name}.yaml" for name in PRESETS},
            losses=("ae.kl",),
            dataset="paired",
            paper=PAPER,
            description="paired photo -> anime colouring autoencoder (L -> a*b*), --strength, VAE --interpolate",
            pipeline=AEPipeline,
            run_options=RUN_OPTIONS,
        )
    ]
