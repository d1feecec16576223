"""The typed config of ``faststyle``: what each key of configs/default.yaml is and which values it takes.

Pure dataclasses (no torch), so the entry-point module can name this schema and ``anime train``
checks a config before anything heavy loads. The values live in configs/default.yaml only.
"""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.schema import DataConfig, RunConfig, at_least, rule


@dataclass
class FastStyleData(DataConfig):
    style: str | None  # the one style image the network learns (required to train)


@dataclass
class FastStyleLoss:
    """Perceptual loss terms (Johnson et al., "Perceptual Losses for Real-Time Style Transfer", 3.2-3.3)."""

    # VGG-19 layer names (anime_core.backbones.VGG19Features); rule() records no default, hence the noqa
    content_layers: list[str] = rule()
    style_layers: list[str] = rule()
    content_weight: float = at_least(0.0)
    style_weight: float = at_least(0.0)
    tv_weight: float = at_least(0.0)
    style_size: int = at_least(16)
    vgg_pretrained: bool = rule()


@dataclass
class FastStyleOptim:
    """Adam for the one network there is (no discriminator, so no ``lr_d``)."""

    lr_g: float = at_least(0.0)
    betas: list[float] = rule(low=0.0, high=0.9999, length=2)


@dataclass
class FastStyleConfig(RunConfig):
    data: FastStyleData
    loss: FastStyleLoss
    optim: FastStyleOptim
