"""AnimeGAN's typed config: common key names, values checked by range."""

from __future__ import annotations

import pytest
from anime_plugin_animegan.config import AnimeGANConfig
from anime_plugin_animegan.discriminator import Discriminator

import anime_core
from anime_core import config as cfglib
from anime_core.errors import ConfigError, UsageError
from anime_core.registry import get_registry


@pytest.fixture
def spec():
    return get_registry().model("animegan")


def test_schema_is_the_models_and_the_defaults_fit_it(spec):
    assert spec.schema_class() is AnimeGANConfig
    cfg = cfglib.resolve(spec)
    assert cfg.loss.adversarial == "lsgan" and cfg.loss.style_weight == 3.0
    assert cfg.optim.betas == [0.5, 0.999] and cfg.discriminator.width == 64 and cfg.train.init_epochs == 1


@pytest.mark.parametrize(("override", "message"), [
    ("loss.color_weight=-1", "'loss.color_weight' must be at least 0.0"),
    ("loss.adversarial=lsgn", "'loss.adversarial' names unknown adversarial loss 'lsgn'; did you mean 'lsgan'"),
    ("optim.betas=[0.5]", "'optim.betas' expects a list of 2 values"),
    ("optim.betas=[0.5,1.5]", "'optim.betas' must be between 0.0 and 0.9999"),
    ("optim.init_lr=-0.1", "'optim.init_lr' must be at least 0.0"),
    ("discriminator.width=1", "'discriminator.width' must be at least 2"),
    ("generator.variant=v3", "'generator.variant' must be one of v1, v2"),
    ("train.init_epochs=-1", "'train.init_epochs' must be at least 0"),
    ("data.flip=maybe", "'data.flip' expects true or false"),
    ("train.image_size=30", "v1 generator needs train.image_size to be a multiple of 4, not 30"),
])
def test_a_bad_value_is_a_config_error_naming_the_key(spec, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        cfglib.resolve(spec, None, [override])


def test_v2_takes_any_crop_size(spec):
    assert cfglib.resolve(spec, "v2", ["train.image_size=30"]).train.image_size == 30


def test_the_dataset_kind_is_the_models_not_a_config_key(spec):
    assert spec.dataset == "animegan"
    with pytest.raises(ConfigError, match="unknown config key 'data.kind'"):
        cfglib.resolve(spec, None, ["data.kind=unpaired"])


def test_build_takes_the_new_option_names():
    d = anime_core.build("animegan", "discriminator", width=8, n_dis=2)
    assert isinstance(d, Discriminator)
    widths = [m.out_channels for m in d.modules() if hasattr(m, "out_channels")]
    assert widths == [4, 8, 16, 16, 1]  # width // 2, then doubling per stride-2 pair, patch logits
    with pytest.raises(UsageError, match="has no option 'ch'"):
        anime_core.build("animegan", "discriminator", ch=8)
    with pytest.raises(UsageError, match="width >= 2"):
        anime_core.build("animegan", "discriminator", width=1)
