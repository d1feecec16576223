"""The typed run config of ``animegan``: what each key of ``configs/default.yaml`` is and may be.

Pure dataclasses (no torch); the values live in ``configs/default.yaml`` only. Rules that tie keys
together are checked in :meth:`AnimeGANConfig.__post_init__`, so they fail when the config resolves.
The loss weights are the w of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo
animation", section 3.2, eq. 1, 5 and 6.
"""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.errors import ConfigError
from anime_core.schema import (
    DataConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    adversarial_loss,
    at_least,
    one_of,
    rule,
)

#: the v1 generator's input sides must be multiples of this (GeneratorV1.stride)
V1_STRIDE = 4


@dataclass
class AnimeGANData(DataConfig):
    prepared: str | None  # a folder of your own for the gray / edge-smoothed copies; None: the cache
    prepared_cache: str | None  # written by the run: the cache entry $ANIME_HOME/prepared/<key> it read; not read
    flip: bool = rule()
    edge_images: str = one_of("gray", "color")  # the edge-promoting loss's images (color: Fig. 5 "B")


@dataclass
class AnimeGANTrain(TrainConfig):
    init_epochs: int = at_least(0)  # generator-only content-loss epochs before the adversarial ones
    weight_init: str = one_of("official", "he", "pytorch")  # see anime_plugin_animegan.weights_init


@dataclass
class AnimeGANGenerator:
    """``variant`` and the options of one variant each (null: that variant's default; see the generator module)."""

    variant: str = one_of("v1", "v2")
    resize: str | None = one_of("half_pixel", "tf1_legacy")  # v1
    dsconv_eps: float | None = rule(low=0.0, high=0.1)  # v1
    upsample: str | None = one_of("align_corners", "half_pixel")  # v2
    out_bias: bool | None = rule()  # v2


@dataclass
class AnimeGANDiscriminator:
    width: int = at_least(2)  # the first conv has width // 2 channels
    n_dis: int = at_least(1)
    spectral: bool = rule()


@dataclass
class AnimeGANLoss:
    adversarial: str = adversarial_loss()
    adversarial_weight: float = at_least(0.0)
    content_weight: float = at_least(0.0)
    style_weight: float = at_least(0.0)
    color_weight: float = at_least(0.0)
    edge_weight: float = at_least(0.0)
    gray_adversarial_weight: float = at_least(0.0)
    vgg_pretrained: bool = rule()


@dataclass
class AnimeGANOptim(OptimConfig):
    init_lr: float = at_least(0.0)


@dataclass
class AnimeGANConfig(RunConfig):
    data: AnimeGANData
    train: AnimeGANTrain
    generator: AnimeGANGenerator  # type: ignore[assignment]  # typed here: range errors before any build
    discriminator: AnimeGANDiscriminator  # type: ignore[assignment]
    loss: AnimeGANLoss
    optim: AnimeGANOptim

    def __post_init__(self) -> None:
        # v1 halves each side twice and doubles it twice: other crop sizes come out smaller than the
        # photo, and the colour and content losses would fail at the first step
        size = self.train.image_size
        if self.generator.variant == "v1" and size % V1_STRIDE:
            raise ConfigError(f"the AnimeGAN v1 generator needs train.image_size to be a multiple of {V1_STRIDE}, "
                              f"not {size}")
