"""The hooks a plugin implements (pluggy project ``anime``, entry-point group ``anime.plugins``).

A plugin is a module with ``@hookimpl`` functions, found through its entry point::

    [project.entry-points."anime.plugins"]
    example = "anime_example_plugin.plugin"

**When the hooks are called.** Once per process, when something first needs the registry
(:func:`anime_core.registry.get_registry`: every ``anime`` command, ``anime_core.load``/``build``,
the web app at start-up). The core imports each plugin module, then calls every hook of every
plugin, one implementation at a time, in this order: generators, discriminators, losses, datasets,
models, styles, converters, detectors. The first-party plugins (the core and the four paper plugins) come
first, so a third party cannot take over their names.

**What a hook receives and returns.** No arguments. Each returns a list of specs of
:mod:`anime_core.specs` (plain, frozen data; ``None`` counts as ``[]``). Code is named by a
``"package.module:attribute"`` reference that the core imports only when it is used, so the hook
and the module it lives in import no torch: ``anime --help`` and ``anime list`` call every hook
and answer before torch could load.

**What the return means.** Every spec is registered under its name in one
:class:`anime_core.registry.Registry`; the plugin's name is stamped on it (``spec.plugin``). Names
are global: a name another plugin registered first, an invalid spec (a style without a hash, a
reference that is not ``module:attribute``) or a hook that raises is recorded as that plugin's
error (``anime plugins`` lists it, every command prints one warning line) and everything else
keeps working. ``load_registry(strict=True)``, which the contract test uses, raises instead.

The core's own losses and dataset kinds come through the same hooks (:mod:`anime_core.builtin`).
What a built generator must expose is :mod:`anime_core.contract`; how a model chooses among
several generators is :mod:`anime_core.variants`.
"""

from __future__ import annotations

import pluggy

from anime_core.specs import (
    DatasetSpec,
    DetectorSpec,
    DiscriminatorSpec,
    GeneratorSpec,
    LossSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
)

PROJECT = "anime"
ENTRY_POINT_GROUP = "anime.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def anime_register_generators() -> list[GeneratorSpec]:
    """Register generator builders.

    Called once per process, first of the hooks. Return one :class:`~anime_core.specs.GeneratorSpec`
    per network: ``build`` refers to a function whose keyword arguments are the ``generator:``
    section of the model's config and which returns an ``nn.Module`` that follows
    :mod:`anime_core.contract` (an int ``stride`` for translate models, ``latent_dim`` for generate
    models). Name it ``<model>`` when the model has one network, ``<model>.<variant>`` for each of
    several (the model's ``variant_key`` then chooses, :mod:`anime_core.variants`); a plugin may
    add a variant to another plugin's model this way.

    The registry builds through it with ``Registry.build(model, "generator", **overrides)``
    (``anime_core.build``); nothing is built while registering.

    Example::

        @hookimpl
        def anime_register_generators():
            return [GeneratorSpec("animegan.v1", "anime_plugin_animegan.generator:build_v1", "the paper's"),
                    GeneratorSpec("animegan.v2", "anime_plugin_animegan.generator:build_v2", "AnimeGANv2")]
    """


@hookspec
def anime_register_discriminators() -> list[DiscriminatorSpec]:
    """Register discriminator builders, named ``<model>.d``.

    Called once per process, after the generator hooks. ``build`` refers to a function whose
    keyword arguments are the model's ``discriminator:`` config section; training tasks build it
    with ``self.build_net("discriminator")``. Inference never builds it.

    Example::

        @hookimpl
        def anime_register_discriminators():
            return [DiscriminatorSpec("cyclegan.d", "anime_plugin_cyclegan.discriminator:build_discriminator")]
    """


@hookspec
def anime_register_losses() -> list[LossSpec]:
    """Register reusable, named losses (``lsgan``, ``cycle_l1``, ``gram_grayscale``...).

    Called once per process, after the discriminator hooks. ``build(**options)`` returns a callable
    ``nn.Module``; a task gets one with ``self.loss(name, **options)``. ``adversarial=True`` marks
    a GAN loss (``d_loss``/``g_loss``), which makes it a value ``loss.adversarial`` may name in any
    model's config. The contract test checks that each gives a finite, differentiable scalar.

    Example::

        @hookimpl
        def anime_register_losses():
            return [LossSpec("total_variation", "anime_example_plugin.losses:TotalVariationLoss", "squared TV")]
    """


@hookspec
def anime_register_datasets() -> list[DatasetSpec]:
    """Register dataset kinds (``images``, ``unpaired``, ``paired``, ``noise``...).

    Called once per process, after the loss hooks. ``build(config, train=True)`` takes the resolved
    run config and returns a ``torch.utils.data.Dataset`` of dicts of tensors; ``keys`` names the
    config keys of the folders it reads, which ``anime train`` checks before it writes anything.
    A model names its kind in ``ModelSpec.dataset``.

    Example::

        @hookimpl
        def anime_register_datasets():
            return [DatasetSpec("cyclegan", "anime_plugin_cyclegan.data:build_dataset", "unpaired photos + anime",
                                keys=("data.photo", "data.anime"))]
    """


@hookspec
def anime_register_models() -> list[ModelSpec]:
    """Register models: the names users type (``anime run animegan``), each a recipe of nets, task and defaults.

    Called once per process, after the dataset hooks. The returned :class:`~anime_core.specs.ModelSpec`
    names its builders (registered by any plugin), its default YAML (the one source of default
    values) and typed schema, its training task, dataset kind and pipeline, all by reference. The
    model then appears in ``anime list``/``info``/``run``/``train``/``export``, the web app and
    ``anime_core.load``; a reference is imported when that command needs it.

    Example::

        @hookimpl
        def anime_register_models():
            return [ModelSpec("faststyle", "translate", generator="faststyle",
                              task="anime_example_plugin.task:FastStyleTask",
                              config=CONFIGS / "default.yaml", schema="anime_example_plugin.config:FastStyleConfig",
                              dataset="images", paper="Johnson et al., ECCV 2016")]
    """


@hookspec
def anime_register_styles() -> list[StyleSpec]:
    """Register pretrained styles of a model (``animegan:paprika``); a style-only plugin implements just this.

    Called once per process, after the model hooks. A style names a model (of any plugin; a style
    for a model nobody registers is dropped with an error on its plugin), a download with its hash
    and size, and the generator options the weights need. Nothing downloads here: ``anime weights
    pull`` or the first ``--style`` use fetches and verifies the file.

    Example::

        @hookimpl
        def anime_register_styles():
            return [StyleSpec(model="animegan", name="mine", source=WeightsSource(URL, sha256=SHA256),
                              license="CC-BY-4.0")]
    """


@hookspec
def anime_weights_converters() -> list[WeightsConverter]:
    """Register converters from foreign checkpoint layouts to native state dicts.

    Called once per process, after the style hooks. When ``--weights`` (or ``--init``) names a file
    that is not native safetensors, the core tries the model's converters in order:
    ``matches(state)`` recognises a layout from its keys, ``convert(state)`` returns
    ``(native_state, generator_options)`` (the options name the variant the tensors belong to);
    the optional ``describe(state)`` names the closest layout of a file no converter takes.

    Example::

        @hookimpl
        def anime_weights_converters():
            return [WeightsConverter("dcgan.pytorch-examples", "dcgan", "anime_plugin_dcgan.converters:matches",
                                     "anime_plugin_dcgan.converters:convert", "netG_epoch_N.pth")]
    """


@hookspec
def anime_register_detectors() -> list[DetectorSpec]:
    """Register face detectors for ``--faces`` (portrait mode, :mod:`anime_core.faces`).

    Called once per process, last of the hooks. ``build(path, **options)`` refers to a function
    returning a callable that maps an (H, W, 3) uint8 RGB array to a list of
    :class:`anime_core.faces.detect.Face` (box, five landmarks, score); ``path`` is the file of
    ``source``, which the core downloads and verifies like any weights (``anime weights pull
    detector:NAME``, ``anime weights import detector:NAME FILE``). The core registers
    ``retinaface`` (RetinaFace MobileNet-0.25 on ONNX Runtime); ``--detector NAME`` and
    ``anime_core.load(..., faces=True, detector=NAME)`` choose another, e.g. a plugin's more
    accurate detector.

    Example::

        @hookimpl
        def anime_register_detectors():
            return [DetectorSpec("scrfd", "anime_faces_plugin.scrfd:build", WeightsSource(URL, sha256=SHA256),
                                 "SCRFD-10G, better on profile faces")]
    """
