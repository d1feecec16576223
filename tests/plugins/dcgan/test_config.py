"""The dcgan plugin's configs under the plugin contract: typed values, builders by option name."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_dcgan.discriminator import DCGANDiscriminator, MultiScaleDiscriminator
from anime_plugin_dcgan.sr.generator import SRGenerator

import anime_core
from anime_core.config import resolve
from anime_core.errors import ConfigError, UsageError


def spec(name: str = "dcgan"):
    return anime_core.get_registry().model(name)


@pytest.mark.parametrize(("model", "override", "message"), [
    ("dcgan", "loss.adversarial=wgan-gp", "config key 'loss.adversarial' must be one of bce, hinge, wgan, lsgan"),
    ("dcgan", "loss.gp_weight=-1", "config key 'loss.gp_weight' must be at least 0.0"),
    ("dcgan", "loss.vgg_weight=-0.5", "config key 'loss.vgg_weight' must be at least 0.0"),
    ("dcgan", "optim.n_critic=0", "config key 'optim.n_critic' must be at least 1"),
    ("dcgan", "optim.betas=[0.5]", "config key 'optim.betas' expects a list of 2 values"),
    ("dcgan", "schedule.decay=cosine", "config key 'schedule.decay' must be one of linear, none"),
    ("dcgan", "schedule.decay_start_epoch=-1", "config key 'schedule.decay_start_epoch' must be at least 0"),
    ("dcgan", "data.conditional=maybe", "config key 'data.conditional' expects true or false"),
    ("pixelsake-sr", "data.val_fraction=1.5", "config key 'data.val_fraction' must be between 0.0 and 0.9"),
    ("pixelsake-sr", "loss.adversarial=wgan-gp", "config key 'loss.adversarial' names unknown adversarial loss"),
    ("pixelsake-sr", "eval.max_images=0", "config key 'eval.max_images' must be at least 1"),
])
def test_bad_value_is_a_config_error_naming_the_key(model, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve(spec(model), None, [override])


def test_defaults_and_presets_resolve_with_the_paper_values():
    cfg = resolve(spec(), None, [])
    assert cfg.loss.adversarial == "bce" and cfg.loss.gp_weight == 10.0
    assert cfg.optim.betas == [0.5, 0.999] and cfg.optim.lr_g == cfg.optim.lr_d == 2e-4
    assert (cfg.schedule.decay, cfg.schedule.decay_start_epoch, cfg.train.epochs) == ("linear", 25, 50)
    pixelsake = resolve(spec(), "pixelsake", [])
    assert pixelsake.loss.adversarial == "hinge"
    assert pixelsake.loss.feature_matching_weight == pixelsake.loss.vgg_weight == 1.0
    assert pixelsake.discriminator["num_scales"] == 3 and pixelsake.train.image_size == 128
    sr = resolve(spec("pixelsake-sr"), None, [])
    assert (sr.loss.l1_weight, sr.loss.perceptual_weight, sr.loss.adversarial_weight) == (1e-2, 1.0, 5e-3)
    assert sr.optim.betas == [0.9, 0.999] and (sr.schedule.decay_start_epoch, sr.train.epochs) == (50, 100)


def test_build_takes_the_new_option_names():
    d = anime_core.build("dcgan", "discriminator", width=8, num_scales=2, spectral_norm=True, batch_norm=False)
    assert isinstance(d, MultiScaleDiscriminator) and [s.image_size for s in d.scales] == [64, 32]
    assert d.scales[0].blocks[0][0].out_channels == 8
    sr_d = anime_core.build("pixelsake-sr", "discriminator", width=8)
    assert isinstance(sr_d, DCGANDiscriminator) and sr_d.image_size == 128
    assert sr_d(torch.randn(1, 3, 128, 128)).shape == (1,)
    sr_g = anime_core.build("pixelsake-sr", "generator", width=8, num_blocks=1, scale=2)
    assert isinstance(sr_g, SRGenerator) and sr_g(torch.zeros(1, 3, 5, 5)).shape == (1, 3, 10, 10)
    with pytest.raises(UsageError, match="has no option 'ndf'; choose one of: .*width"):
        anime_core.build("dcgan", "discriminator", ndf=8)


@pytest.mark.parametrize(("part", "options", "message"), [
    ("generator", {"image_size": 96}, "power of two >= 8 .*, not 96; set train.image_size"),
    ("discriminator", {"image_size": 32, "num_scales": 4}, "go below 8 px; set discriminator.num_scales lower"),
    ("discriminator", {"num_scales": 0}, "discriminator.num_scales must be at least 1"),
])
def test_builders_reject_bad_options_as_usage_errors(part, options, message):
    with pytest.raises(UsageError, match=message):
        anime_core.build("dcgan", part, **options)
    with pytest.raises(UsageError, match="set generator.scale=4"):
        anime_core.build("pixelsake-sr", "generator", scale=3)
