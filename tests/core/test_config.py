"""Config resolution: defaults < file/preset < key=value, typed values, unknown keys with suggestions."""

from __future__ import annotations

import pytest

from anime_core import config as cfglib
from anime_core.errors import ConfigError


def test_merge_order_and_typed_overrides(tiny_registry, tmp_path):
    spec = tiny_registry.model("tiny")
    user = tmp_path / "my.yaml"
    user.write_text("train:\n  batch_size: 3\n  seed: 5\ngenerator:\n  width: 12\n")
    cfg = cfglib.resolve(spec, user, ["train.seed=7", "optim.lr=1e-4", "train.precision=no", "data.photo=~/p"])
    assert cfg["train"]["batch_size"] == 3  # from the file
    assert cfg["train"]["seed"] == 7  # override beats the file
    assert cfg["generator"]["width"] == 12
    assert cfg["optim"]["lr"] == pytest.approx(1e-4) and isinstance(cfg["optim"]["lr"], float)
    assert cfg["train"]["precision"] == "no"  # YAML would read `no` as False
    assert cfg["train"]["image_size"] == 16  # plugin default over base default 256
    assert cfg["train"]["epochs"] == 1  # base default kept
    assert cfg["data"]["photo"] == "~/p"


def test_preset_by_name(tiny_registry):
    cfg = cfglib.resolve(tiny_registry.model("tiny"), "wide")
    assert cfg["generator"]["width"] == 16


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_stpes=3", "unknown config key 'train.max_stpes'; did you mean 'train.max_steps'"),
        ("trian.seed=1", "unknown config key 'trian'; did you mean 'train'"),
        ("train.batch_size=big", "'train.batch_size' expects an integer"),
        ("train.seed", "is not key=value"),
        ("optim.lr=fast", "'optim.lr' expects a number"),
    ],
)
def test_bad_overrides_are_one_sentence_errors(tiny_registry, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfglib.resolve(tiny_registry.model("tiny"), None, [override])


def test_bad_files(tiny_registry, tmp_path):
    spec = tiny_registry.model("tiny")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        cfglib.resolve(spec, broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        cfglib.resolve(spec, listy)
    with pytest.raises(ConfigError, match="neither a config file nor a preset.*did you mean 'wide'"):
        cfglib.resolve(spec, "wid")
    with pytest.raises(ConfigError, match="cannot read config file"):
        cfglib.resolve(spec, tmp_path / "missing.yaml")


def test_write_is_atomic_and_round_trips(tmp_path):
    cfg = {"train": {"precision": "no", "lr": 1e-4}, "data": {"photo": None}}
    cfglib.write(cfg, tmp_path / "run" / "config.yaml")
    assert cfglib.read_yaml(tmp_path / "run" / "config.yaml") == cfg
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.yaml"]  # no temp files left
