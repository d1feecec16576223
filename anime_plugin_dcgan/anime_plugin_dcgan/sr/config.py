"""Typed config of ``pixelsake-sr``: what each key of ``configs/sr.yaml`` is (values stay in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.schema import (
    DataConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    adversarial_loss,
    at_least,
    between,
    rule,
)


@dataclass
class SRData(DataConfig):
    val_fraction: float = between(0.0, 0.9)  # share of data.anime held out for PSNR


@dataclass
class SRLoss:
    l1_weight: float = at_least(0.0)
    perceptual_weight: float = at_least(0.0)
    vgg_layers: list[str] = rule()
    vgg_pretrained: bool = rule()
    adversarial: str = adversarial_loss()
    adversarial_weight: float = at_least(0.0)
    pretrain_steps: int = at_least(0)  # L1-only steps before the adversarial terms


@dataclass
class SREval:
    every: int = at_least(0)  # steps between held-out PSNR evaluations; 0: never
    max_images: int = at_least(1)


@dataclass
class SRConfig(RunConfig):
    data: SRData
    loss: SRLoss
    optim: OptimConfig
    schedule: ScheduleConfig
    eval: SREval
