"""Config resolution: defaults < file/preset < key=value, typed values, unknown keys with suggestions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from anime_core import config as cfglib
from anime_core.errors import ConfigError
from anime_core.schema import OptimConfig, RunConfig, ScheduleConfig, adversarial_loss, at_least, typed


@dataclass
class Loss:
    adversarial: str = adversarial_loss()
    cycle_weight: float = at_least(0.0)


@dataclass
class Config(RunConfig):
    """A schema as a plugin writes it (module level, so its annotations resolve)."""

    loss: Loss
    optim: OptimConfig
    schedule: ScheduleConfig


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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "'train.batch_size' must be at least 1, not 0"),
        ("train.image_size=7", "'train.image_size' must be at least 16, not 7"),
        ("train.grad_accum=0", "'train.grad_accum' must be at least 1, not 0"),
        ("data.num_workers=-1", "'data.num_workers' must be at least 0, not -1"),
        ("train.max_steps=-5", "'train.max_steps' must be at least 1, not -5"),
        ("train.precision=fp8", "'train.precision' must be one of no, fp16, bf16, not 'fp8'"),
        ("train.device=tpu", "'train.device' must be one of auto, cpu, cuda, not 'tpu'"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(tiny_registry, override, message):
    """Typed configs: a value out of range is a usage error (exit 2) at resolve time, not a crash later."""
    with pytest.raises(ConfigError, match=message) as info:
        cfglib.resolve(tiny_registry.model("tiny"), None, [override])
    assert info.value.exit_code == 2


def test_schema_types_every_section(tmp_path):
    """A model schema types its own sections too; values come from the YAML only."""
    cfg = cfglib.base_defaults() | {
        "loss": {"adversarial": "lsgan", "cycle_weight": 10},
        "optim": {"lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]},
        "schedule": {"decay": "linear", "decay_start_epoch": 100},
    }
    view = typed(Config, cfg, adversarial={"lsgan", "bce"})
    assert view.loss.cycle_weight == 10.0 and isinstance(view.loss.cycle_weight, float)
    assert view.optim.betas == [0.5, 0.999] and view.train.batch_size == 4
    with pytest.raises(ConfigError, match="unknown adversarial loss 'lsgna'; did you mean 'lsgan'"):
        typed(Config, cfg | {"loss": {"adversarial": "lsgna", "cycle_weight": 1.0}}, adversarial={"lsgan", "bce"})
    with pytest.raises(ConfigError, match="'optim.betas' expects a list of 2 values"):
        typed(Config, cfg | {"optim": {"lr_g": 1.0, "lr_d": 1.0, "betas": [0.5]}})
    with pytest.raises(ConfigError, match="'loss.cycle_weight' is missing"):
        typed(Config, cfg | {"loss": {"adversarial": "lsgan"}})


def test_yaml_alias_bomb_is_refused_quickly(tiny_registry, tmp_path):
    """Issue 12 item 16: a billion-laughs document under a known key is refused, not expanded."""
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\ngenerator:\n  width: *a9\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 64 YAML aliases"):
        cfglib.resolve(tiny_registry.model("tiny"), bomb)
    assert time.perf_counter() - start < 2.0
    huge = tmp_path / "huge.yaml"
    huge.write_text("train:\n  seed: 1\n" + "#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        cfglib.resolve(tiny_registry.model("tiny"), huge)
