"""The spec types plugins register through the hooks in :mod:`anime_core.hookspecs`.

A spec is plain data. Code it points at (builders, tasks, pipelines, converters) is named by a
*reference*: a string ``"package.module:attribute"`` that is imported only when the object is
needed, or the object itself. A plugin's entry-point module therefore imports no torch, timm or
network code, and ``anime list`` answers before torch could load. :func:`load_ref` resolves a
reference; each spec has a method per reference (``GeneratorSpec.builder()``,
``ModelSpec.task_class()``...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    import click
    import torch
    from torch import nn

    from anime_core.inference.pipeline import Pipeline
    from anime_core.training.task import TrainingTask

ModelKind = Literal["translate", "generate"]
StateDict = dict[str, "torch.Tensor"]
T = TypeVar("T")
#: a lazy reference ``"package.module:attribute"`` or the object itself
Ref = str | T


def load_ref(ref: Ref[T]) -> T:
    """Resolve ``"package.module:attr.sub"`` by importing the module; objects are returned as they are.

    A reference that does not resolve raises :class:`anime_core.errors.PluginError` naming it.
    """
    if not isinstance(ref, str):
        return ref
    from anime_core.errors import PluginError

    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"reference '{ref}' is not of the form 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import '{module_name}' for '{ref}': {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"'{ref}' does not exist: {module_name} has no '{attr}'") from None
    return obj


def ref_name(ref: Ref[Any]) -> str:
    """``module:attribute`` of a reference, for messages and ``anime info``."""
    if isinstance(ref, str):
        return ref
    return f"{getattr(ref, '__module__', '?')}:{getattr(ref, '__qualname__', type(ref).__name__)}"


@dataclass(frozen=True)
class GeneratorSpec:
    """A named generator builder, e.g. ``animegan.v1``: ``build`` refers to ``build_generator(**options) -> nn.Module``.

    Names follow ``<model>`` (a model with one network) or ``<model>.<variant>``: one registered
    name per network, as in timm, which is how a model with ``ModelSpec.variant_key`` declares its
    choices (see :mod:`anime_core.variants`). The module it returns follows
    :class:`anime_core.contract.Generator`.
    """

    name: str
    build: Ref[Callable[..., nn.Module]]
    description: str = ""
    plugin: str = ""

    def builder(self) -> Callable[..., nn.Module]:
        return load_ref(self.build)


@dataclass(frozen=True)
class DiscriminatorSpec:
    """A named discriminator builder, named ``<model>.d`` (``cyclegan.d``)."""

    name: str
    build: Ref[Callable[..., nn.Module]]
    description: str = ""
    plugin: str = ""

    def builder(self) -> Callable[..., nn.Module]:
        return load_ref(self.build)


@dataclass(frozen=True)
class LossSpec:
    """A named, reusable loss: ``build(**options)`` returns a callable ``nn.Module``.

    ``adversarial`` marks GAN losses (an :class:`anime_core.losses.AdversarialLoss` with
    ``d_loss``/``g_loss``): these are the values ``loss.adversarial`` accepts in a config.
    """

    name: str
    build: Ref[Callable[..., nn.Module]]
    description: str = ""
    adversarial: bool = False
    plugin: str = ""

    def builder(self) -> Callable[..., nn.Module]:
        return load_ref(self.build)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset kind (``images``, ``unpaired``, ``paired``, ``noise``).

    ``build(config, train=True)`` takes the resolved run config and returns a
    ``torch.utils.data.Dataset`` whose items are dicts of tensors. ``keys`` names the config keys
    of the folders it reads (``("data.photo", "data.anime")``): ``anime train`` checks each one
    before it writes anything and stores them as absolute paths, and ``anime info`` lists them.
    ``"data.anime|data.photo"`` means the first of them that is set.
    """

    name: str
    build: Ref[Callable[..., Any]]
    description: str = ""
    plugin: str = ""
    keys: tuple[str, ...] = ()

    def builder(self) -> Callable[..., Any]:
        return load_ref(self.build)


@dataclass(frozen=True)
class WeightsFile:
    """One published file: its URL, hash (``sha256``, ``git_sha1`` or at least ``sha256_prefix``) and size.

    ``filename`` is the name it gets in the cache (default: the URL's last component); files of
    one source must keep the names their reader expects (a TF checkpoint's ``.index`` and
    ``.data-*`` share one prefix).
    """

    url: str
    sha256: str | None = None
    git_sha1: str | None = None
    sha256_prefix: str | None = None
    filename: str | None = None
    size: int | None = None  # published size in bytes: a download stops there instead of filling the disk

    @property
    def file_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WeightsSource:
    """Where a pretrained file comes from and how to check it.

    ``sha256`` or ``git_sha1`` (the git blob SHA-1, what GitHub publishes) must be set, or at
    least ``sha256_prefix``: the leading hex digits some hosts put in file names
    (``vgg19-dcbb9e9d.pth``), which is what ``torch.hub``'s ``check_hash`` verifies.
    ``layout`` names the checkpoint layout: ``native`` or a registered converter's name.
    ``size`` is the published size in bytes, where known.

    Weights made of several files (a TensorFlow checkpoint's ``NAME.ckpt.index`` and
    ``NAME.ckpt.data-00000-of-00001``) name the first file in the fields above and the others in
    ``companions``, each with its own hash: they are downloaded and verified all together into one
    cache folder (none is installed unless every one verifies), and the first file's path is what
    the loader receives. :meth:`of` builds such a source from :class:`WeightsFile` entries.
    """

    url: str
    sha256: str | None = None
    git_sha1: str | None = None
    sha256_prefix: str | None = None
    layout: str = "native"
    filename: str | None = None
    size: int | None = None  # published size in bytes: a download stops there instead of filling the disk
    companions: tuple[WeightsFile, ...] = ()

    @classmethod
    def of(cls, first: WeightsFile, *others: WeightsFile, layout: str = "native") -> WeightsSource:
        """A source made of ``first`` (the file the loader is given) and the files that must sit beside it."""
        return cls(
            url=first.url, sha256=first.sha256, git_sha1=first.git_sha1, sha256_prefix=first.sha256_prefix,
            layout=layout, filename=first.filename, size=first.size, companions=tuple(others),
        )

    @property
    def file_name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def files(self) -> tuple[WeightsFile, ...]:
        """Every file of the source, the first (the loader's) first."""
        first = WeightsFile(self.url, self.sha256, self.git_sha1, self.sha256_prefix, self.filename, self.size)
        return (first, *self.companions)


@dataclass(frozen=True)
class FaceTemplate:
    """Where a face model expects the five landmarks of an aligned face, and the face's size in px.

    ``points``: (x, y) of the left eye, right eye, nose tip, left and right mouth corners (as seen
    in the image), in a ``size`` x ``size`` crop, pixel i spanning [i, i + 1]. ``mask``: the head
    region pasted back, an ellipse (centre x, centre y, radius x, radius y) in the same pixels,
    feathered over ``feather`` px inside its edge. A style trained on aligned faces names its
    template (``StyleSpec.face``); ``--faces`` aligns every face to it.
    """

    name: str
    size: int
    points: tuple[tuple[float, float], ...]
    mask: tuple[float, float, float, float]
    feather: float
    description: str = ""

    def scaled(self, size: int) -> FaceTemplate:
        """The same template for a crop of ``size`` px."""
        k = size / self.size
        return FaceTemplate(self.name, size, tuple((x * k, y * k) for x, y in self.points),
                            (self.mask[0] * k, self.mask[1] * k, self.mask[2] * k, self.mask[3] * k),
                            self.feather * k, self.description)


#: the FFHQ 512 px five-point template GFPGAN and facexlib align faces to (facexlib
#: ``FaceRestoreHelper.face_template``; T. Karras et al., "A Style-Based Generator Architecture for
#: GANs", CVPR 2019, for the FFHQ alignment). The AnimeGANv2 face styles were trained on such crops.
FFHQ_512 = FaceTemplate(
    name="ffhq512",
    size=512,
    points=((192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935),
            (201.26117, 371.41043), (313.08905, 371.15118)),
    mask=(256.0, 262.0, 240.0, 262.0),  # hair above the forehead down to the chin, ears in
    feather=40.0,
    description="FFHQ-aligned 512 px faces (GFPGAN, facexlib, AnimeGANv2 face_paint)",
)


@dataclass(frozen=True)
class DetectorSpec:
    """A named face detector, e.g. ``retinaface``: what ``--faces`` uses to find faces and their landmarks.

    ``build(path, **options)`` refers to a function returning a callable ``detector(rgb) ->
    list[anime_core.faces.detect.Face]`` for an (H, W, 3) uint8 RGB array; ``path`` is its weights
    file, downloaded and verified from ``source`` (catalogued as ``detector:<name>``), or ``None``
    for a detector without weights.
    """

    name: str
    build: Ref[Callable[..., Callable[[Any], list[Any]]]]
    source: WeightsSource | None = None
    description: str = ""
    license: str = ""
    plugin: str = ""

    def builder(self) -> Callable[..., Callable[[Any], list[Any]]]:
        return load_ref(self.build)

    @property
    def key(self) -> str:
        return f"detector:{self.name}"


@dataclass(frozen=True)
class StyleSpec:
    """A pretrained style of a model, e.g. ``animegan:paprika``.

    ``generator`` holds generator options the weights need (``{"variant": "v2"}``);
    ``preprocess`` holds inference defaults (``{"size": 512, "center_crop": True}``);
    ``face`` is the :class:`FaceTemplate` a face style was trained on (``--faces`` aligns to it;
    ``None``: :data:`FFHQ_512`).
    """

    model: str
    name: str
    source: WeightsSource
    generator: Mapping[str, Any] = field(default_factory=dict)
    preprocess: Mapping[str, Any] = field(default_factory=dict)
    license: str = ""
    description: str = ""
    plugin: str = ""
    face: FaceTemplate | None = None  # after plugin: the fields before it keep their positions

    @property
    def key(self) -> str:
        return f"{self.model}:{self.name}"


@dataclass(frozen=True)
class WeightsConverter:
    """Turns a foreign checkpoint layout into a native generator state dict.

    ``matches(state)`` recognises the layout from its keys; ``convert(state)`` returns
    ``(native_state, generator_options)`` where the options select the architecture the
    weights belong to (``{"variant": "v2"}``). The optional ``describe(state)`` names the closest
    layout a file that no converter takes resembles, and what differs, as a clause ("looks like a
    CycleGAN U-Net checkpoint with batch norm; use ..."), for the error a user sees.
    """

    name: str
    model: str
    matches: Ref[Callable[[Mapping[str, torch.Tensor]], bool]]
    convert: Ref[Callable[[Mapping[str, torch.Tensor]], tuple[StateDict, dict[str, Any]]]]
    description: str = ""
    describe: Ref[Callable[[Mapping[str, torch.Tensor]], str | None]] | None = None
    plugin: str = ""

    def describe_fn(self) -> Callable[[Mapping[str, torch.Tensor]], str | None] | None:
        return None if self.describe is None else load_ref(self.describe)

    def matches_fn(self) -> Callable[[Mapping[str, torch.Tensor]], bool]:
        return load_ref(self.matches)

    def convert_fn(self) -> Callable[[Mapping[str, torch.Tensor]], tuple[StateDict, dict[str, Any]]]:
        return load_ref(self.convert)


@dataclass(frozen=True)
class ModelSpec:
    """One entry a user names on the command line: a recipe of nets, task, data and defaults.

    - ``generator`` / ``discriminator``: registry names of the builders (``<model>``, ``<model>.d``);
      their options are the ``generator:`` / ``discriminator:`` sections of the config.
    - ``variant_key``: for a model with several networks, the ``generator:`` key that names one
      (``"variant"``; cyclegan keeps ``"arch"``). Its networks are then the generators registered as
      ``<generator>.<variant>`` (``animegan.v1``, ``animegan.v2``), declared nowhere else: ``--variant``
      and ``variant=`` offer them and the core builds the one chosen (:mod:`anime_core.variants`).
    - ``config``: the plugin's default YAML (``configs/default.yaml``), the one source of default
      values; ``schema``: the typed dataclass those values must fit (see :mod:`anime_core.config`);
      ``presets``: names usable as ``--config NAME`` for further YAML files.
    - ``task``: the :class:`~anime_core.training.task.TrainingTask` subclass; ``dataset``: the
      registered dataset kind it trains on.
    - ``pipeline``: the inference pipeline class (default: the core's for ``kind``);
      ``run_options``: extra click options of ``anime run MODEL`` (passed to the pipeline).
    - ``prepare``: an optional data-preparation step (``anime prepare MODEL``).
    - ``default_style``: the style the web app's picker opens on (a name of one of its styles).

    ``task``, ``schema``, ``pipeline`` and ``prepare`` are references (see :func:`load_ref`).
    """

    name: str
    kind: ModelKind
    generator: str
    discriminator: str | None = None
    task: Ref[type[TrainingTask]] | None = None
    config: Path | None = None
    schema: Ref[type] | None = None
    presets: Mapping[str, Path] = field(default_factory=dict)
    dataset: str | None = None
    paper: str = ""
    description: str = ""
    pipeline: Ref[type[Pipeline]] | None = None
    run_options: tuple[click.Option, ...] = ()
    prepare: Ref[Callable[[Any], Any]] | None = None
    variant_key: str | None = None  # last but one: the fields before it keep their positions
    plugin: str = ""
    #: the style a picker opens on (the web app): a general-purpose one, not the alphabetically first
    default_style: str = ""

    def task_class(self) -> type[TrainingTask]:
        from anime_core.errors import UsageError

        if self.task is None:
            raise UsageError(f"model '{self.name}' has no training task")
        return load_ref(self.task)

    def schema_class(self) -> type | None:
        return None if self.schema is None else load_ref(self.schema)

    def pipeline_class(self) -> type[Pipeline] | None:
        return None if self.pipeline is None else load_ref(self.pipeline)

    def prepare_fn(self) -> Callable[[Any], Any] | None:
        return None if self.prepare is None else load_ref(self.prepare)
