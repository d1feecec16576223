"""Issue 22, item 6: the generator contract is written down once (``anime_core/contract.py``), the contract
test checks every registered generator against it, and the hooks say when they run and what they return."""

from __future__ import annotations

import inspect
import types

import pytest
from torch import nn

from anime_core import contract, hookimpl, hookspecs
from anime_core.specs import GeneratorSpec, ModelSpec
from anime_core.testing import check_plugin


class Plain(nn.Module):
    """A generator that declares nothing."""

    def forward(self, x):
        return x


class Strided(Plain):
    stride = 4


class BadScale(Strided):
    scale = 2.5  # a float: the pipeline's int(...) would silently truncate it


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_problems_name_the_missing_and_the_wrongly_typed_attribute():
    assert contract.problems(Strided(), "translate") == []
    (missing,) = contract.problems(Plain(), "translate")
    assert "Plain has no attribute 'stride' (required for a translate model" in missing
    (missing,) = contract.problems(Strided(), "generate")
    assert "has no attribute 'latent_dim'" in missing
    (wrong,) = contract.problems(BadScale(), "translate")
    assert wrong.startswith("BadScale.scale is 2.5, expected an int")
    assert isinstance(Strided(), contract.TranslateGenerator) and not isinstance(Plain(), contract.TranslateGenerator)


def test_the_generators_check_builds_every_variant_and_names_the_one_that_breaks_it(tmp_path):
    config = tmp_path / "trio.yaml"
    config.write_text("generator:\n  variant: ok\n")
    plugin = _plugin(
        anime_register_generators=lambda: [GeneratorSpec("trio.ok", Strided), GeneratorSpec("trio.plain", Plain),
                                           GeneratorSpec("trio.scaled", BadScale)],
        anime_register_models=lambda: [ModelSpec("trio", "translate", "trio", config=config, paper="x",
                                                 variant_key="variant")],
    )
    problems = check_plugin(plugin, name="trio", requires=(), checks=("generators",))
    assert len(problems) == 2, problems  # the default variant passes; each of the others is named
    assert "generator 'trio.plain' (translate model 'trio')" in problems[0] and "'stride'" in problems[0]
    assert "generator 'trio.scaled'" in problems[1] and "scale is 2.5" in problems[1]


@pytest.mark.parametrize("plugin", ["animegan", "cyclegan", "dcgan", "ae"])
def test_every_first_party_generator_follows_the_contract(plugin):
    assert check_plugin(plugin, checks=("generators",)) == []


def test_the_onnx_export_records_the_contracts_attributes():
    from anime_core.inference.backends import onnx_runtime

    assert onnx_runtime.ATTRIBUTES is contract.EXPORTED
    assert set(contract.EXPORTED) == {*contract.OPTIONAL, *(a.name for a in contract.REQUIRED.values())}


def test_every_hook_says_when_it_is_called_what_it_returns_and_shows_an_example():
    hooks = [fn for name, fn in vars(hookspecs).items() if name.startswith("anime_") and callable(fn)]
    assert len(hooks) == 8  # generators, discriminators, losses, datasets, models, styles, converters, detectors
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert "Called once per process" in doc and "Example::" in doc and "@hookimpl" in doc, hook.__name__
        assert f"def {hook.__name__}()" in doc, hook.__name__  # the example implements this very hook
