"""The typed run config of ``cyclegan``: what each key of ``configs/default.yaml`` is and may be.

Pure dataclasses (no torch): the values live in ``configs/default.yaml``; this says their types
and ranges, and checks the rules that tie keys together (see :meth:`CycleGANConfig.__post_init__`),
so a config that cannot train fails when it is resolved, with exit 2, not at the first step.
"""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.errors import ConfigError
from anime_core.schema import (
    DataConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    adversarial_loss,
    at_least,
    one_of,
    rule,
)

#: how many times the generators halve a side, as a factor: a training crop must be a multiple of it
UNET_STRIDE = 2**8
RESNET_STRIDE = 2**2


@dataclass
class CycleGANData(DataConfig):
    load_size: int | None = at_least(16)
    color_jitter: list[float] = rule(low=0.0, length=4)
    anime_filter: str = one_of("none", "sharpen", "smooth", "blur")


@dataclass
class CycleGANLoss:
    adversarial: str = adversarial_loss()
    cycle_weight: float = at_least(0.0)
    identity_weight: float = at_least(0.0)
    pool_size: int = at_least(0)


@dataclass
class CycleGANConfig(RunConfig):
    data: CycleGANData
    loss: CycleGANLoss
    optim: OptimConfig
    schedule: ScheduleConfig

    def __post_init__(self) -> None:
        size = self.train.image_size
        if self.data.load_size is not None and self.data.load_size < size:
            raise ConfigError(f"config key 'data.load_size' ({self.data.load_size}) must be at least "
                              f"train.image_size ({size})")
        check_crop_size(str(self.generator.get("arch")), size, int(self.generator.get("n_downs") or 8))


def check_crop_size(arch: str, image_size: int, n_downs: int = 8) -> None:
    """Training crops must fit the generator: its output must match its input for the cycle loss.

    The 8-level U-Net halves every side 8 times: below 256 px a level reaches 1x1, where
    InstanceNorm has a single value to normalise and training stops with a torch error; between
    multiples of 256 the skip connections no longer line up. The ResNet generator halves twice;
    the pix2pix U-Net ``n_downs`` times.
    """
    stride = {"unet": UNET_STRIDE, "resnet": RESNET_STRIDE, "pix2pix-unet": 2**n_downs}.get(arch)
    name = {"unet": "U-Net", "resnet": "ResNet generator", "pix2pix-unet": "pix2pix U-Net"}.get(arch, arch)
    if arch != "resnet" and stride and image_size < stride:
        raise ConfigError(f"the {name} needs train.image_size >= {stride}; use --config resnet9 for smaller images")
    if stride and image_size % stride:
        raise ConfigError(f"the {name} needs train.image_size to be a multiple of {stride}, not {image_size}")
