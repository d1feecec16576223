"""Fine-tuning: a new run that starts from pretrained weights (``--init``), and frozen parts (``train.freeze``).

``anime train MODEL --init animegan:paprika`` starts from a style, ``--init FILE`` from any file
the weights system loads (native safetensors, foreign ``.pt``/``.pth`` and TensorFlow checkpoints
through the model's registered converters). Each part the file holds (``generator``, and
``discriminator``, ``generator_inverse``... where it has them) replaces the freshly built net of
that name; the other nets keep their initialisation, and the optimizers start fresh.

Before anything is written (:func:`start_weights`), the run's config is fitted to the file:

- generator options the file records (or its style names) are adopted where the config only
  holds the model's default, and said so; an option the user set to something else is an error;
- the task's :attr:`~anime_core.training.task.TrainingTask.finetune_defaults` apply where the
  user did not set the key (AnimeGAN skips its generator warm-up: ``train.init_epochs=0``);
- the generator those options describe is built on the meta device (no memory) and compared
  with the file's tensors, so a file that does not fit fails before a run folder exists;
- ``init.source`` and ``init.sha256`` are recorded in the run's ``config.yaml``. A config that
  already names a source (a copied ``config.yaml``) starts from it again, and a recorded hash
  must match.

After the task built its nets (:func:`apply_start`), the weights are loaded and ``train.freeze``
takes effect: the named parts of :meth:`~anime_core.training.task.TrainingTask.freezable` get
``requires_grad=False`` and leave every optimizer (on resume too, so the optimizer state fits).
Batch-norm statistics inside a frozen part still follow the new data (the nets stay in train mode).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from anime_core import config as cfglib
from anime_core.errors import ConfigError, UsageError, WeightsUnavailable

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.schema import RunConfig
    from anime_core.specs import ModelSpec
    from anime_core.training.task import TrainingTask
    from anime_core.weights.files import LoadedWeights

NO_FREEZE = ("", "none")


@dataclass
class StartWeights:
    """The weights a new run starts from, and what fitting the config to them changed (to print)."""

    source: str
    sha256: str
    weights: LoadedWeights
    notes: list[str] = field(default_factory=list)


def start_weights(
    spec: ModelSpec,
    cfg: RunConfig,
    registry: Registry,
    source: str | None = None,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    resuming: bool = False,
) -> StartWeights | None:
    """Load ``source`` (else the config's ``init.source``) and fit ``cfg`` to it (in place); None without a source.

    ``config`` and ``overrides`` are what the user gave, to tell the keys they chose from defaults.
    A resumed run continues from its checkpoint's weights: None.
    """
    from anime_core.weights.files import load_weights

    if resuming:
        if source:
            raise UsageError("--init starts a new run from pretrained weights; --resume continues from the run's "
                             "checkpoint: give one of them")
        return None
    recorded = cfg.init.sha256 if source is None else None
    source = source if source is not None else cfg.init.source
    if not source:
        return None
    paths, style_options, is_file = _locate(spec, str(source), registry)
    weights = load_weights(paths[0], spec.name, registry)
    sha256 = files_sha256(paths)
    if recorded and recorded.lower() != sha256:
        raise WeightsUnavailable(
            f"init.source {source} has sha256 {sha256}, but the config records {recorded}; the file changed: "
            f"give the original file, or set init.sha256=null to start from this one"
        )
    if "generator" not in weights.parts:
        raise WeightsUnavailable(f"--init {source} holds no generator (parts: {', '.join(weights.parts)})")
    explicit = user_keys(spec, config, overrides)
    notes = _adopt_options(spec, cfg, {**style_options, **weights.generator}, source, explicit)
    notes += _finetune_defaults(spec, cfg, explicit)
    # a file is recorded by its absolute path, so a copy of config.yaml finds it from any folder
    cfg.init.source = str(Path(source).expanduser().absolute()) if is_file else str(source)
    cfg.init.sha256 = sha256
    try:
        cfglib.refresh(spec, cfg, registry)
    except ConfigError as exc:
        raise ConfigError(f"the generator options of --init {source} do not suit this model's config: {exc}") from None
    _check_fit(spec, cfg, weights.parts["generator"], registry, source)
    return StartWeights(str(source), sha256, weights, notes)


def apply_start(task: TrainingTask, start: StartWeights | None) -> list[str]:
    """Load the start weights into the task's nets and freeze ``train.freeze``; returns lines to print."""
    from anime_core.weights.files import load_into

    notes = list(start.notes) if start is not None else []
    if start is not None:
        loaded = [p for p in start.weights.parts if p in task.nets]
        for part in loaded:
            load_into(task.nets[part], start.weights.parts[part], f"the '{part}' of --init {start.source}")
        fresh = [n for n in task.nets if n not in loaded]
        notes.append(f"--init {start.source} (sha256 {start.sha256[:12]}): {', '.join(loaded)} from the file"
                     + (f"; {', '.join(fresh)} from random weights (the file has none)" if fresh else "")
                     + "; the optimizers start fresh")
    notes += freeze(task, task.cfg.train.freeze)
    return notes


def freeze(task: TrainingTask, names: str) -> list[str]:
    """Freeze the parts ``names`` (comma-separated) of ``task.freezable()``: no gradients, out of the optimizers."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted or [n.lower() for n in wanted] == ["none"]:
        return []
    parts = task.freezable()
    for name in wanted:
        if name not in parts:
            offer = f"one of {', '.join(sorted(parts))} or none" if parts else "none (it has no freezable parts)"
            raise ConfigError(f"train.freeze={names}: model '{task.spec.name}' cannot freeze '{name}'; use {offer}")
    params = {id(p): p for name in wanted for module in parts[name] for p in module.parameters()}
    for p in params.values():
        p.requires_grad_(False)
    for opt_name, opt in task.optimizers.items():
        for group in opt.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in params]
        if not any(group["params"] for group in opt.param_groups):
            raise ConfigError(f"train.freeze={names} leaves optimizer '{opt_name}' of '{task.spec.name}' nothing "
                              f"to train; freeze less")
    total = sum(p.numel() for net in task.nets.values() for p in net.parameters())
    fixed = sum(p.numel() for p in params.values())
    return [f"train.freeze={names}: {fixed:,} of {total:,} parameters fixed"]


def files_sha256(paths: Sequence[Path]) -> str:
    """sha256 of one file, or of the bytes of several (a TensorFlow checkpoint's files) in name order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def user_keys(spec: ModelSpec, config: str | Path | None, overrides: Sequence[str]) -> set[str]:
    """Dotted keys the user set through ``--config`` (a file or preset) or ``key=value``."""
    keys = {".".join(cfglib.parse_override(text)[0]) for text in overrides}
    if config is not None:
        path = spec.presets.get(str(config), config)
        keys |= set(_dotted(cfglib.read_yaml(path)))
    return keys


# -- internals ----------------------------------------------------------------------------------
def _locate(spec: ModelSpec, source: str, registry: Registry) -> tuple[list[Path], dict[str, Any], bool]:
    """The files of ``source`` (a weights file, a TF checkpoint, ``MODEL:STYLE`` or a style name), the
    generator options a style names, and whether the user named a file."""
    from anime_core.weights import fetch_style, tf1

    path = Path(source).expanduser()
    if path.is_file() or tf1.checkpoint_prefix(path) is not None:
        return _files_of(path), {}, True
    model, sep, name = source.partition(":")
    if not sep and source in registry.styles_of(spec.name):
        model, name = spec.name, source
    elif not sep or model not in registry.models:
        styles = ", ".join(f"{spec.name}:{s}" for s in sorted(registry.styles_of(spec.name))) or "none"
        raise UsageError(f"--init {source} is neither a weights file nor a style (styles of '{spec.name}': {styles}); "
                         f"give a file path or MODEL:STYLE")
    if model != spec.name:
        raise UsageError(f"--init {source} is a style of '{model}', not of '{spec.name}'; train {model} to use it")
    style = registry.style(model, name)
    return _files_of(fetch_style(style)), dict(style.generator), False


def _files_of(path: Path) -> list[Path]:
    """The file, or every file of the TensorFlow checkpoint it belongs to (the index first)."""
    from anime_core.weights import tf1

    prefix = tf1.checkpoint_prefix(path)
    if prefix is None:
        return [path]
    return [tf1.index_path(prefix), *sorted(prefix.parent.glob(f"{prefix.name}.data-*"))]


def _adopt_options(
    spec: ModelSpec, cfg: RunConfig, wanted: dict[str, Any], source: str, explicit: set[str]
) -> list[str]:
    """Put the file's generator options into ``cfg``; one set by the user to another value is an error."""
    section = cfglib.net_options(cfg, "generator")
    changed = []
    for key, value in wanted.items():
        current = section.get(key)
        if current == value or (isinstance(current, (list, tuple)) and list(current) == value):
            continue
        if f"generator.{key}" in explicit:
            raise ConfigError(
                f"generator.{key}={current} conflicts with the weights of --init {source} ({key}={value}); drop "
                f"generator.{key} or start from weights with that option"
            )
        try:
            cfglib.assign(cfg, f"generator.{key}", value)
        except ConfigError as exc:
            raise ConfigError(f"the generator options of --init {source} do not suit this model's config: "
                              f"{exc}") from None
        changed.append(f"generator.{key}={value} (was {current})")
    return [f"--init {source}: the run takes the file's generator options {', '.join(changed)}"] if changed else []


def _finetune_defaults(spec: ModelSpec, cfg: RunConfig, explicit: set[str]) -> list[str]:
    notes = []
    for key, value in spec.task_class().finetune_defaults.items():
        old = cfglib.lookup(cfg, key)  # a task's finetune_defaults name keys its schema declares
        if key in explicit or old == value:
            continue
        cfglib.assign(cfg, key, value)
        notes.append(f"--init: {key}={value} for a run that starts from trained weights (was {old}); "
                     f"set {key}={old} to keep it")
    return notes


def _check_fit(spec: ModelSpec, cfg: RunConfig, state: dict[str, torch.Tensor], registry: Registry,
               source: str) -> None:
    """Build this run's generator on the meta device (no memory) and compare it with the file's tensors."""
    options = cfglib.net_options(cfg, "generator")
    try:
        with torch.device("meta"):
            net = registry.build(spec, "generator", **options)
    except (NotImplementedError, RuntimeError):
        return  # a builder that computes with real values at build time: load_into still checks, after building
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [(k, list(t.shape), list(state[k].shape)) for k, t in expected.items()
              if k in state and tuple(t.shape) != tuple(state[k].shape)]
    if not (missing or unexpected or shapes):
        return
    if shapes:
        key, built, held = shapes[0]
        why = f"{key} is {held} in the file but {built} in this run's generator"
    else:
        why = (f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else "") + (
            f"{' and ' if missing else ''}{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "the defaults"
    raise WeightsUnavailable(
        f"--init {source} does not fit the generator of this run ({shown}): {why}; set the generator options "
        f"the weights were trained with"
    )


def _dotted(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _dotted(value, f"{prefix}{key}.")
    return keys

