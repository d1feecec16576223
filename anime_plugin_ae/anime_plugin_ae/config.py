"""The typed run config of ``ae`` (values in ``configs/default.yaml``; see :mod:`anime_core.schema`).

Pure dataclasses (no torch): ``anime_core.config.validate`` checks a resolved config against
:class:`AEConfig`, so a bad value is a config error naming the key before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.schema import DataConfig, RunConfig, at_least, between, one_of, rule


@dataclass
class AEData(DataConfig):
    """The paired folders and their split and preprocessing (see :mod:`anime_plugin_ae.data`)."""

    val_fraction: float = between(0.0, 1.0)  # 1.0 leaves nothing to train on: split_pairs says so
    denoise: str = one_of("none", "median", "gaussian")
    denoise_size: int = at_least(1)
    augment: bool = rule()


@dataclass
class AELoss:
    kl_weight: float = at_least(0.0)


@dataclass
class AEOptim:
    """Adam for the generator only: ae has no discriminator, hence no ``lr_d``."""

    lr_g: float = at_least(0.0)
    betas: list[float] = rule(low=0.0, high=0.9999, length=2)


@dataclass
class AEConfig(RunConfig):
    data: AEData
    loss: AELoss
    optim: AEOptim
