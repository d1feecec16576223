"""Typed run configs: each model's config is a set of dataclasses (issue "One wiring for every plugin").

The values live in one place, the plugin's ``configs/default.yaml`` (merged over the core's
``configs/base.yaml``); the dataclasses say what each key is: its type, its allowed range or
choices. :func:`typed` checks a merged config against its schema and returns the typed run config,
the one object the loop, tasks, datasets and the web app read (``cfg.train.batch_size``); a value
of the wrong type or out of range is a :class:`~anime_core.errors.ConfigError` (exit 2) naming the
key and what is allowed. Values are typed by :func:`coerce`, the one coercer. The dataclasses
have no ``__getattr__``: reading a key the schema does not declare is an ``AttributeError``, and
:func:`compare` walks a YAML against a schema both ways (the plugin contract's ``configs`` check).

A plugin's schema subclasses :class:`RunConfig` and adds its sections::

    @dataclass
    class CycleGANLoss:
        adversarial: str = adversarial_loss()
        cycle_weight: float = at_least(0.0)

    @dataclass
    class CycleGANConfig(RunConfig):
        loss: CycleGANLoss
        optim: OptimConfig
        schedule: ScheduleConfig

Fields carry no default values (``at_least``/``between``/``one_of`` only record the rule), so
there is exactly one source of defaults: the YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from anime_core import budget
from anime_core.errors import ConfigError, did_you_mean

T = TypeVar("T")
_NONE = type(None)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def rule(low: float | None = None, high: float | None = None, choices: tuple[Any, ...] = (),
         adversarial: bool = False, length: int | None = None) -> Any:
    """A schema field's rule (no default value: values come from the YAML)."""
    return dataclasses.field(metadata={"low": low, "high": high, "choices": choices, "adversarial": adversarial,
                                       "length": length})


def at_least(low: float) -> Any:
    return rule(low=low)


def between(low: float, high: float) -> Any:
    return rule(low=low, high=high)


def one_of(*choices: Any) -> Any:
    return rule(choices=choices)


def adversarial_loss() -> Any:
    """A registered adversarial loss name (``lsgan``, ``bce``, ``hinge``, ``wgan``...), checked against the registry."""
    return rule(adversarial=True)


# -- the sections every model has (values in anime_core/configs/base.yaml) ----------------------
@dataclass
class DataConfig:
    photo: str | None
    anime: str | None
    num_workers: int = at_least(0)


#: px; the largest training crop. The built-in models train at 64 to 256 px; a 4096 px crop has 256 times the
#: pixels of a 256 px one, and its activations alone would fill an 80 GB accelerator at batch size 1 for these
#: generators. Above it the run only ends when an allocation fails, so the config is refused at once.
MAX_IMAGE_SIZE = 4096
#: bytes one training pixel holds in a step's data alone: RGB float32 for each of the two domains
DATA_BYTES_PER_PIXEL = 2 * 3 * 4


@dataclass
class TrainConfig:
    image_size: int = between(16, MAX_IMAGE_SIZE)
    batch_size: int = at_least(1)
    max_steps: int | None = at_least(1)
    epochs: int = at_least(1)
    device: str = one_of("auto", "cpu", "cuda")
    precision: str = one_of("no", "fp16", "bf16")
    grad_accum: int = at_least(1)
    seed: int = at_least(0)
    checkpoint_every: int = at_least(0)
    sample_every: int = at_least(0)
    log_every: int = at_least(0)
    keep_checkpoints: int = at_least(1)
    tensorboard: bool = rule()
    freeze: str = rule()  # "none" or comma-separated names of TrainingTask.freezable()

    def __post_init__(self) -> None:
        """Refuse a batch whose data alone (not yet the activations) would not fit the memory budget."""
        need = self.batch_size * self.image_size**2 * DATA_BYTES_PER_PIXEL
        budget.check_bytes(need, f"train.batch_size={self.batch_size} crops of train.image_size={self.image_size}",
                           error=ConfigError, advice="lower train.batch_size or train.image_size")


@dataclass
class InitConfig:
    """Pretrained weights a new run starts from (``--init``); what a run records for reproducibility."""

    source: str | None  # a style key (``animegan:paprika``) or a weights file
    sha256: str | None


@dataclass
class RunConfig:
    """The keys every model understands; a model's schema subclasses it."""

    output_dir: str | None
    data: DataConfig
    train: TrainConfig
    generator: dict[str, Any]  # the builder's keyword arguments, checked against its signature
    discriminator: dict[str, Any]
    init: InitConfig


# -- sections several models share (values in each plugin's YAML) -------------------------------
@dataclass
class OptimConfig:
    """Adam: ``lr_g`` for the generator, ``lr_d`` for the discriminator, ``betas`` for both."""

    lr_g: float = at_least(0.0)
    lr_d: float = at_least(0.0)
    betas: list[float] = rule(low=0.0, high=0.9999, length=2)


@dataclass
class ScheduleConfig:
    """``decay: linear``: constant rate, then linear decay to 0 at the run's last step; ``decay_start_epoch``
    (below ``train.epochs``) says after what share of the run the decay starts. The core builds the
    schedules (:mod:`anime_core.training.schedule`)."""

    decay: str = one_of("linear", "none")
    decay_start_epoch: int = at_least(0)


def compare(schema: type, values: Mapping[str, Any], prefix: str = "") -> tuple[list[str], list[str]]:
    """Walk ``values`` (a merged YAML) against ``schema`` both ways: ``(undeclared, unset)``.

    ``undeclared``: dotted keys the YAML sets that the schema does not declare (code could not read
    them); ``unset``: keys the schema declares that the YAML does not set (code would read a value
    no YAML gives). The open ``dict`` sections (builder options) are not walked.
    """
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    undeclared = [f"{prefix}{key}" for key in values if key not in hints]
    unset = [f"{prefix}{name}" for name in names if name not in values]
    for name in names:
        hint, value = hints[name], values.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            more = compare(hint, value, f"{prefix}{name}.")  # type: ignore[arg-type]
            undeclared, unset = undeclared + more[0], unset + more[1]
    return undeclared, unset


def typed(schema: type[T], cfg: Mapping[str, Any], adversarial: Mapping[str, Any] | None = None) -> T:
    """Check ``cfg`` against ``schema`` and return the dataclass view.

    ``adversarial`` is the set of registered adversarial loss names for fields declared with
    :func:`adversarial_loss` (unchecked when ``None``).
    """
    view = _build(schema, cfg, "", adversarial)
    _check_schedule(view)
    return view


def _check_schedule(cfg: Any) -> None:
    """A linear decay starts within the run: ``schedule.decay_start_epoch`` below ``train.epochs``."""
    names = {f.name for f in dataclasses.fields(cfg)}
    if not {"schedule", "train"} <= names or not isinstance(cfg.schedule, ScheduleConfig):
        return
    start, epochs = cfg.schedule.decay_start_epoch, cfg.train.epochs
    if cfg.schedule.decay == "linear" and start >= epochs:
        raise ConfigError(f"config key 'schedule.decay_start_epoch' ({start}) must be below train.epochs ({epochs}), "
                          f"or set schedule.decay=none")


def _build(cls: type[T], values: Any, prefix: str, adversarial: Mapping[str, Any] | None) -> T:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(values, Mapping):
        raise ConfigError(f"config key '{where}' must be a section of keys, not {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in values:
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}'{did_you_mean(str(key), fields)}")
    out: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in values:
            raise ConfigError(f"config key '{key}' is missing; the model's configs/default.yaml must set it")
        out[name] = _value(key, hints[name], values[name], f.metadata, adversarial)
    return cls(**out)


def _value(key: str, hint: Any, value: Any, meta: Mapping[str, Any], adversarial: Mapping[str, Any] | None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType) and _NONE in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not _NONE)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", adversarial)
    if origin is dict or hint is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a section of keys, not {value!r}")
        return dict(value)
    if origin is list:
        value = coerce(key, list, value)
        length = meta.get("length")
        if length is not None and len(value) != length:
            raise ConfigError(f"config key '{key}' expects a list of {length} values, got {list(value)!r}")
        item = args[0] if args else Any
        return [_check(key, coerce(key, item, v), meta) for v in value]
    value = _check(key, coerce(key, hint, value), meta)
    if meta.get("adversarial") and adversarial is not None and value not in adversarial:
        hint = did_you_mean(value, adversarial)
        raise ConfigError(f"config key '{key}' names unknown adversarial loss '{value}'{hint}")
    return value


def coerce(key: str, hint: Any, value: Any) -> Any:
    """Type ``value`` as ``hint`` (``bool``, ``int``, ``float``, ``str``, ``list``); the one coercer.

    The schema types every declared key with it, and the config merge types the options of the open
    ``generator:``/``discriminator:`` sections by the default they replace. Text from an override
    or a YAML file converts where the meaning is plain (``"8"`` -> 8, ``yes``/``no`` -> a bool;
    YAML 1.1 reads ``precision: no`` as False, which a string key takes back as ``"no"``); anything
    else is a :class:`~anime_core.errors.ConfigError` naming the key. Other hints pass values through.
    """
    if value is None:
        raise ConfigError(f"config key '{key}' must be set (it cannot be null)")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"config key '{key}' expects true or false, got {value!r}")
    if hint is str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (Mapping, list, tuple)):
            raise ConfigError(f"config key '{key}' expects a string, got {value!r}")
        return str(value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' expects an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' expects a number, got {value!r}")
    if hint is list or typing.get_origin(hint) is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ConfigError(f"config key '{key}' expects a list like [a, b], got {value!r}")
    return value


def _check(key: str, value: Any, meta: Mapping[str, Any]) -> Any:
    low, high, choices = meta.get("low"), meta.get("high"), meta.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(map(str, choices))}, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if low is not None and high is not None and not low <= value <= high:
            raise ConfigError(f"config key '{key}' must be between {low} and {high}, not {value}")
        if low is not None and value < low:
            raise ConfigError(f"config key '{key}' must be at least {low}, not {value}")
        if high is not None and value > high:
            raise ConfigError(f"config key '{key}' must be at most {high}, not {value}")
    return value
