"""The plugin contract: the checks every plugin runs in its own CI (DESIGN.md "plugins/").

A plugin's test module inherits them, and pytest shows one line per check::

    from anime_core.testing import PluginContract

    class TestContract(PluginContract):
        plugin = "example"        # its entry-point name in "anime.plugins", or the plugin module

    # test_contract.py::TestContract::test_contract[load] PASSED
    # test_contract.py::TestContract::test_contract[light] PASSED ...

or calls them directly: ``check_plugin("example") -> list[str]`` (empty when valid) and
``assert_plugin_valid("example")``. The plugin is loaded in isolation
(:func:`anime_core.registry.load_registry` with ``entry_points=False``): the core, the plugin, and
the installed plugins whose models its styles, converters or builders add to.

:data:`CHECKS` is the table, name -> function (each in its own small module):

``load``        the plugin imports, its hooks do not raise, its specs are valid and clash with nothing.
``light``       importing the entry-point module in a fresh interpreter loads no torch, timm, torchvision.
``references``  every ``"package.module:attribute"`` reference resolves (an import error names the module)
                to a builder, a ``TrainingTask`` subclass, a ``RunConfig`` schema, a ``Pipeline`` of the kind.
``names``       generators are ``<model>`` or ``<model>.<variant>``, discriminators ``<model>.d``; a model with
                ``variant_key`` has no bare ``<model>`` builder beside its variants.
``configs``     the default YAML and every preset fit the schema key for key (``config.validate``, as
                ``anime train`` reads them); no ``data.kind``;
                ``generator:``/``discriminator:`` sections are exactly builder options.
``models``      nets build from the default config and map the right shapes for the model's kind (see
                :mod:`anime_core.testing.nets`); the paper is cited; ``spec.task_class()(spec, cfg, registry)``
                builds nets and optimizers; the dataset kind named by ``ModelSpec.dataset`` is registered
                and yields items from a folder of sample images.
``generators``  every registered generator, each ``<model>.<variant>`` included, built as its model builds it,
                has the attributes :mod:`anime_core.contract` names: ``stride`` (translate) or ``latent_dim``
                (generate), and the optional ones (``min_side``, ``scale``, ``num_classes``...) of the right type.
``styles``      an http(s) URL, a well-formed hash, a known layout, options that build, a license note.
``converters``  a sample of each foreign layout is recognised, converted and loads strictly (samples from
                ``contract_samples()`` in the plugin module, else derived from the generator's own state).
``losses``      registered losses give finite, differentiable scalars (GAN losses via ``d_loss``/``g_loss``).
``builders``    builders no model names build with their defaults.

Nothing downloads: the checks run with ``ANIME_OFFLINE=1`` and every boolean config key whose name
contains ``pretrained`` is set to false before a task is built. Inputs are small (32-64 px).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anime_core.testing.checks import CHECKS, assert_plugin_valid, check_plugin, run_contract
from anime_core.testing.report import Report
from anime_core.testing.subject import installed_plugins

if TYPE_CHECKING:
    from anime_core.testing.contract import PluginContract

__all__ = [
    "CHECKS",
    "PluginContract",
    "Report",
    "assert_plugin_valid",
    "check_plugin",
    "installed_plugins",
    "run_contract",
]


def __getattr__(name: str) -> Any:
    # PluginContract needs pytest; check_plugin() outside a test run does not
    if name == "PluginContract":
        from anime_core.testing.contract import PluginContract

        return PluginContract
    raise AttributeError(f"module 'anime_core.testing' has no attribute '{name}'")
