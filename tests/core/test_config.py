"""Config resolution: defaults < file/preset < key=value, typed values, unknown keys with suggestions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    assert cfg.train.batch_size == 3  # from the file
    assert cfg.train.seed == 7  # override beats the file
    assert cfg.generator["width"] == 12
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.train.precision == "no"  # YAML would read `no` as False
    assert cfg.train.image_size == 16  # plugin default over base default 256
    assert cfg.train.epochs == 1  # base default kept
    assert cfg.data.photo == "~/p"


def test_preset_by_name(tiny_registry):
    cfg = cfglib.resolve(tiny_registry.model("tiny"), "wide")
    assert cfg.generator["width"] == 16


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
        ("train.image_size=7", "'train.image_size' must be between 16 and 4096, not 7"),
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
        "schedule": {"decay": "linear", "decay_start_epoch": 0},  # below train.epochs (1)
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


# -- the typed config is the config (issue 22 item 1) -------------------------------------------
def test_resolution_gives_one_typed_object_that_refuses_undeclared_keys(tiny_registry):
    from tiny_anime_plugin.config import TinyConfig

    cfg = cfglib.resolve(tiny_registry.model("tiny"), None, ["train.seed=3"])
    assert isinstance(cfg, TinyConfig) and cfg.train.seed == 3 and cfg.data.num_workers == 0  # the YAML's value
    with pytest.raises(AttributeError):
        cfg.train.learning_rate  # noqa: B018  no schema declares it: no code can read it
    with pytest.raises(AttributeError):
        cfglib.lookup(cfg, "loss.l2_weight")
    with pytest.raises(ConfigError, match="unknown config key 'optim.lr_g'; did you mean 'optim.lr'"):
        cfglib.assign(cfg, "optim.lr_g", 0.1)
    plain = cfglib.resolve(tiny_registry.model("tinygen"), None, ["generator.width=4"])  # no schema: core keys
    assert type(plain) is RunConfig and plain.generator == {"width": 4} and plain.train.batch_size == 2
    assert not cfglib.declares(plain, "loss.adversarial") and cfglib.declares(plain, "data.anime")
    with pytest.raises(AttributeError):
        plain.loss  # noqa: B018


def test_the_saved_config_round_trips_to_the_same_typed_object(tiny_registry, tmp_path):
    spec = tiny_registry.model("tiny")
    cfg = cfglib.resolve(spec, None, ["train.precision=no", "optim.lr=1e-4"])
    cfglib.write(cfg, tmp_path / "config.yaml")
    assert cfglib.read_yaml(tmp_path / "config.yaml")["train"]["precision"] == "no"  # a string, not YAML's False
    assert cfglib.load_saved(spec, tmp_path / "config.yaml") == cfg
    assert cfglib.load_saved(spec, tmp_path / "config.yaml", ["train.seed=9"]).train.seed == 9


def test_one_coercer_types_overrides_files_and_builder_options(tiny_registry, tmp_path):
    from anime_core.schema import coerce

    user = tmp_path / "user.yaml"
    user.write_text("train:\n  precision: no\n  tensorboard: 'yes'\noptim:\n  lr: 1e-3\n")  # YAML 1.1: a string 1e-3
    cfg = cfglib.resolve(tiny_registry.model("tiny"), user, ["generator.width=12.0"])
    assert cfg.train.precision == "no" and cfg.train.tensorboard is True and cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.generator["width"] == 12 and isinstance(cfg.generator["width"], int)  # typed by its default
    assert coerce("k", int, "8") == 8 and coerce("k", float, 2) == 2.0 and coerce("k", str, False) == "no"
    for hint, bad in ((int, 1.5), (float, True), (bool, "maybe"), (list, 3)):
        with pytest.raises(ConfigError, match="config key 'k' expects"):
            coerce("k", hint, bad)


def test_every_default_yaml_matches_its_schema_both_ways(registry, tiny_registry):
    """Every key a plugin's YAML sets is declared, every declared key is set: for each installed model."""
    from anime_core.registry import load_registry
    from anime_core.schema import compare

    models = {**load_registry().models, **tiny_registry.models}
    assert {"ae", "animegan", "cyclegan", "dcgan", "pixelsake-sr", "faststyle", "tiny", "tinygen"} <= set(models)
    for spec in models.values():
        assert compare(spec.schema_class() or RunConfig, cfglib.model_defaults(spec)) == ([], []), spec.name
    undeclared, unset = compare(Config, cfglib.base_defaults() | {"loss": {"adversarial": "lsgan", "cycle": 1}})
    assert undeclared == ["loss.cycle"] and sorted(unset) == ["loss.cycle_weight", "optim", "schedule"]


def _config_reads(source: str) -> list[list[str]]:
    """Attribute chains read from the run config in ``source``: ``self.cfg.loss.x``, ``cfg.train.y``,
    ``config.data.z``."""
    import ast

    chains = []
    tree = ast.parse(source)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        names: list[str] = []
        part: ast.expr = node
        while isinstance(part, ast.Attribute):
            names.insert(0, part.attr)
            part = part.value
        if isinstance(part, ast.Name):
            names.insert(0, part.id)
        if names[:2] == ["self", "cfg"] and len(names) > 2:
            chains.append(names[2:])
        elif names[0] in ("cfg", "config") and len(names) > 1:
            chains.append(names[1:])
    return chains


def _declared(schema: type, keys: list[str]) -> bool:
    import dataclasses
    import typing

    for key in keys:
        if not dataclasses.is_dataclass(schema):
            return True  # a value (or a builder-options dict): its methods are not config keys
        hints = typing.get_type_hints(schema)
        if key not in hints:
            return False
        schema = hints[key]
    return True


def test_every_config_key_the_plugins_and_the_loop_read_is_declared(registry):
    """A static proof to go with the AttributeError: each ``cfg.section.key`` chain in a plugin's code
    (and in the core's loop, task base, run folder and init) is declared by a schema of that plugin."""
    import importlib

    from anime_core.registry import load_registry
    from anime_core.specs import load_ref

    # the core reads the shared sections only of a model that has them (TrainingTask.adam: optim.betas)
    schemas: dict[str, list[type]] = {"anime_core": [Config]}
    for spec in load_registry().models.values():
        if isinstance(spec.schema, str):
            schemas.setdefault(spec.schema.split(".")[0], []).append(load_ref(spec.schema))
    assert len(schemas) >= 6  # the core, four plugins and the example
    checked = 0
    for package, classes in schemas.items():
        root = Path(importlib.import_module(package).__file__).parent
        files = [root / "training" / f"{n}.py" for n in ("loop", "task", "rundir", "init")] \
            if package == "anime_core" else sorted(root.rglob("*.py"))
        for path in files:
            for chain in _config_reads(path.read_text(encoding="utf-8")):
                checked += 1
                assert any(_declared(c, chain) for c in classes), f"{path}: cfg.{'.'.join(chain)} is not declared"
    assert checked > 100
    # the check can fail: a key no schema declares
    assert not _declared(RunConfig, _config_reads("x = self.cfg.train.learning_rate")[0])
