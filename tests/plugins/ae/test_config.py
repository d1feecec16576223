"""The ae config: paper defaults (Abbas et al., "Ordinary to Anime", Table III), typed ranges."""

from __future__ import annotations

import pytest
from anime_plugin_ae.config import AEConfig

from anime_core.cli import main
from anime_core.config import resolve, to_dict
from anime_core.errors import ConfigError


def resolved(registry, *overrides, config=None):
    return resolve(registry.model("ae"), config, list(overrides))


def test_defaults_are_table_iii_under_the_shared_names(registry):
    cfg = resolved(registry)
    assert to_dict(cfg)["optim"] == {"lr_g": 0.001, "betas": [0.9, 0.999]}  # no lr_d: ae has no discriminator
    assert (cfg.train.batch_size, cfg.train.epochs) == (32, 10)
    assert not hasattr(cfg.data, "kind") and cfg.discriminator == {}
    assert isinstance(cfg, AEConfig) and cfg.optim.betas == [0.9, 0.999] and cfg.loss.kl_weight == 0.001


@pytest.mark.parametrize("preset", ["rgb", "skip", "vae"])
def test_presets_still_resolve(registry, preset):
    assert resolved(registry, config=preset).generator["variant"] == preset


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr_g=-0.1", "'optim.lr_g' must be at least 0.0"),
        ("optim.betas=[0.9]", "'optim.betas' expects a list of 2 values"),
        ("optim.betas=[0.9, 1.5]", "'optim.betas' must be between 0.0 and 0.9999"),
        ("loss.kl_weight=-1", "'loss.kl_weight' must be at least 0.0"),
        ("data.val_fraction=1.5", "'data.val_fraction' must be between 0.0 and 1.0"),
        ("data.denoise=bilateral", "'data.denoise' must be one of none, median, gaussian"),
        ("data.augment=maybe", "'data.augment' expects true or false"),
        ("optim.lr_d=0.1", "unknown config key 'optim.lr_d'"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key(registry, override, message):
    with pytest.raises(ConfigError, match=message):
        resolved(registry, override)


def test_the_cli_exits_2_on_an_unknown_variant(registry, tmp_path, make_pairs, capsys):
    photo, anime = make_pairs(tmp_path / "data", 4)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "ae", "generator.variant=unet", f"data.photo={photo}", f"data.anime={anime}",
              "train.batch_size=2", "train.image_size=32", "data.num_workers=0", f"output_dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    assert "unknown ae variant 'unet'; use one of lab, rgb, skip, vae" in capsys.readouterr().err
