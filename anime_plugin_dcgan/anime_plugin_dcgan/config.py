"""Typed config of ``dcgan``: what each key of ``configs/default.yaml`` is (values stay in the YAML).

Pure dataclasses (no torch), checked by :func:`anime_core.schema.typed` when a config is resolved.
The enhancer's schema is :mod:`anime_plugin_dcgan.sr.config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.schema import DataConfig, OptimConfig, RunConfig, ScheduleConfig, at_least, rule

#: the adversarial losses the task supports (WGAN-GP is ``wgan`` with ``loss.gp_weight``)
ADVERSARIAL = ("bce", "hinge", "wgan", "lsgan")


@dataclass
class DCGANData(DataConfig):
    conditional: bool = rule()  # the anime folder's sub-folders are classes


@dataclass
class DCGANLoss:
    adversarial: str = rule(adversarial=True, choices=ADVERSARIAL)
    gp_weight: float = at_least(0.0)  # gradient penalty, applied with adversarial: wgan
    feature_matching_weight: float = at_least(0.0)
    content_l2_weight: float = at_least(0.0)
    vgg_weight: float = at_least(0.0)
    vgg_pretrained: bool = rule()
    vgg_layers: list[str] = rule()


@dataclass
class DCGANOptim(OptimConfig):
    n_critic: int = at_least(1)  # discriminator steps per generator step


@dataclass
class DCGANConfig(RunConfig):
    data: DCGANData
    loss: DCGANLoss
    optim: DCGANOptim
    schedule: ScheduleConfig

