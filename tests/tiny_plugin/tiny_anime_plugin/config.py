"""The ``tiny`` model's typed config (values in configs/tiny.yaml); ``tinygen`` has none, as a plugin may."""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.schema import RunConfig, ScheduleConfig, adversarial_loss, at_least, rule


@dataclass
class TinyLoss:
    adversarial: str = adversarial_loss()
    l1_weight: float = at_least(0.0)


@dataclass
class TinyOptim:
    lr: float = at_least(0.0)
    betas: list[float] = rule(low=0.0, high=0.9999, length=2)
    explode_at: int = at_least(0)  # step at which the logged loss turns NaN (0: never)
    interrupt_at: int = at_least(0)  # step at which the step raises KeyboardInterrupt (0: never)


@dataclass
class TinyConfig(RunConfig):
    loss: TinyLoss
    optim: TinyOptim
    schedule: ScheduleConfig
