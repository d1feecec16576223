"""What ``anime train`` checks before it writes anything: data folders, output folder, backbone weights.

A run that would fail on a missing folder or missing weights should fail before it prepares data,
and before it names its run folder ("run folder: ..." comes only after these checks pass). The
folders a model reads are the ``keys`` its dataset kind declares (:class:`~anime_core.specs.DatasetSpec`);
they are stored in the run's ``config.yaml`` as absolute paths, so ``--resume`` works from any
directory, and a folder that moved since is named with the key to override.

Perceptual losses read a frozen VGG19 (:mod:`anime_core.backbones`). Without its ImageNet weights
the error also offers ``loss.vgg_pretrained=false``, and a run that uses random VGG19 features
says so when it starts: such features keep colours and coarse shapes but little of what the
content and style losses are meant to compare, so those terms become small and weak.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from anime_core import config as cfglib
from anime_core.errors import ConfigError, WeightsUnavailable

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.schema import RunConfig
    from anime_core.specs import ModelSpec
    from anime_core.training.task import TrainingTask

log = logging.getLogger("anime.train")

#: folder keys every run stores as absolute paths, besides those its dataset kind declares
PATH_KEYS = ("data.photo", "data.anime", "data.prepared")
VGG_KEY = "loss.vgg_pretrained"
RANDOM_VGG = (
    "loss.vgg_pretrained=false: the perceptual (content/style) losses compare features of a randomly "
    "initialised VGG19, which keep colours and coarse shapes but not what the losses are meant to measure; "
    "use it for smoke tests, or import the ImageNet weights with 'anime weights import backbone:vgg19 FILE'"
)


def data_keys(spec: ModelSpec, registry: Registry) -> tuple[str, ...]:
    """The folder keys the model's dataset kind reads (empty when it declares none)."""
    kind = registry.datasets.get(spec.dataset or "")
    return tuple(kind.keys) if kind is not None else ()


def absolute_paths(cfg: RunConfig, keys: tuple[str, ...]) -> None:
    """Store every folder key the model has and that is set as an absolute path (``~`` expanded), in place."""
    for key in dict.fromkeys((*PATH_KEYS, *(k for alt in keys for k in alt.split("|")))):
        value = cfglib.lookup(cfg, key) if cfglib.declares(cfg, key) else None
        if isinstance(value, str) and value:
            cfglib.assign(cfg, key, str(Path(value).expanduser().absolute()))


def check_data(model: str, cfg: RunConfig, keys: tuple[str, ...], resume_dir: Path | None = None) -> None:
    """Each of ``keys`` names an existing folder holding an image; a ConfigError naming the key otherwise."""
    from anime_core.inference.io import IMAGE_EXTENSIONS

    for entry in keys:  # "data.anime|data.photo": the first that is set
        choices = entry.split("|")
        key = next((k for k in choices if cfglib.lookup(cfg, k)), choices[0])
        value = cfglib.lookup(cfg, key)
        if not value:
            others = "".join(f" (or {k}=FOLDER)" for k in choices[1:])
            raise ConfigError(f"'{model}' reads its training images from {key}; pass {key}=FOLDER{others}")
        folder = Path(str(value)).expanduser()
        if not folder.is_dir():
            if resume_dir is not None:
                raise ConfigError(
                    f"{key} {folder} (saved in {resume_dir}/config.yaml) does not exist; if the data moved, "
                    f"resume with its new place: anime train {model} --resume {resume_dir} {key}=FOLDER"
                )
            raise ConfigError(f"{key} {folder} does not exist or is not a folder; pass {key}=FOLDER")
        if not any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.rglob("*")):
            raise ConfigError(
                f"{key} {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); pass {key}=FOLDER"
            )


def require_weights(task: TrainingTask) -> None:
    """Fetch (or find cached) the backbone weights ``task.required_weights()`` names, before data is prepared.

    A task that does not implement ``required_weights`` gets its weights checked when it builds.
    """
    from anime_core.weights import fetch
    from anime_core.weights.known import known_weights

    wanted = getattr(task, "required_weights", None)
    known = known_weights()
    for key in wanted() if callable(wanted) else ():
        if key in known:
            fetch(key, known[key])


@contextmanager
def perceptual_advice(cfg: RunConfig) -> Iterator[None]:
    """Missing VGG19 weights in a config with ``loss.vgg_pretrained``: say that the option exists and what it does."""
    from anime_core.weights.known import VGG19_KEY

    try:
        yield
    except WeightsUnavailable as exc:
        if VGG19_KEY not in str(exc) or not cfglib.declares(cfg, VGG_KEY):
            raise
        raise WeightsUnavailable(
            f"{exc}; or train without them with {VGG_KEY}=false, where the perceptual losses compare random "
            f"VGG19 features (fine for a smoke test, not for learning a style)"
        ) from None


def warn_random_features(task: TrainingTask, cfg: RunConfig) -> str | None:
    """The warning for a run whose task holds a VGG19 with random weights (``loss.vgg_pretrained=false``)."""
    from torch import nn

    from anime_core.backbones import VGG19Features

    if not cfglib.declares(cfg, VGG_KEY) or cfglib.lookup(cfg, VGG_KEY) is not False:
        return None
    for value in vars(task).values():
        if isinstance(value, nn.Module) and any(isinstance(m, VGG19Features) for m in value.modules()):
            return f"warning: {RANDOM_VGG}"
    return None

