"""Issue 22, item 2: a model's networks are its registered ``<model>.<variant>`` generators, and the core
chooses among them, one way for every model (``variant=``, ``--variant``; cyclegan's ``arch`` as an alias)."""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

import anime_core
from anime_core import hookimpl
from anime_core.cli import main
from anime_core.errors import UsageError
from anime_core.registry import load_registry
from anime_core.specs import GeneratorSpec, ModelSpec


class Net(nn.Module):
    def __init__(self, width: int, depth: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*[nn.Conv2d(3 if i == 0 else width, width, 3, padding=1) for i in range(depth)],
                                  nn.Conv2d(width, 3, 1))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_a(width: int = 4) -> Net:
    return Net(width)


def build_b(width: int = 4, depth: int = 1) -> Net:
    return Net(width, depth)


def build_c(width: int = 4) -> Net:
    return Net(width, stride=2)


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


@pytest.fixture
def duo(tmp_path):
    """A model ``duo`` with two networks, ``duo.a`` and ``duo.b``, and its default config."""
    config = tmp_path / "duo.yaml"
    config.write_text("generator:\n  variant: b\n  width: 4\n  depth: 1\n")
    plugin = _plugin(
        anime_register_generators=lambda: [GeneratorSpec("duo.a", build_a), GeneratorSpec("duo.b", build_b)],
        anime_register_models=lambda: [ModelSpec("duo", "translate", "duo", config=config, paper="x",
                                                 variant_key="variant")],
    )
    return plugin


def _registry(*plugins):
    return load_registry(extra=list(plugins), entry_points=False, strict=True)


def test_the_choices_are_the_registered_builders_and_another_plugin_adds_one(duo):
    reg = _registry(("duo", duo))
    variants = reg.variants("duo")
    assert (variants.name, variants.choices, variants.default) == ("variant", ("a", "b"), "b")  # default: the YAML's
    assert reg.build("duo").body[0].out_channels == 4 and len(reg.build("duo", depth=2).body) == 3  # b, its options
    more = _plugin(anime_register_generators=lambda: [GeneratorSpec("duo.c", build_c)])
    reg = _registry(("duo", duo), ("more", more))
    assert reg.variants("duo").choices == ("a", "b", "c")
    assert reg.build("duo", variant="c").stride == 2  # nothing but the registration declared it


def test_another_variants_option_is_dropped_at_its_default_and_refused_otherwise(duo):
    reg = _registry(("duo", duo))
    assert isinstance(reg.build("duo", variant="a"), Net)  # depth: 1 is the default, a takes none
    assert isinstance(reg.build("duo", variant="a", depth=None), Net)  # null: the variant's own default
    with pytest.raises(UsageError, match=r"generator option depth does not apply to variant=a \(only to variant b\)"):
        reg.build("duo", variant="a", depth=3)
    with pytest.raises(UsageError, match=r"unknown duo variant 'z'; use one of a, b"):
        reg.build("duo", variant="z")
    with pytest.raises(UsageError, match=r"has no option 'widht'; did you mean 'width'"):
        reg.build("duo", widht=3)  # taken by no variant: the builder's own error, with a suggestion


def test_a_bare_builder_beside_the_variants_is_a_contract_problem(duo):
    from anime_core.testing.report import Report, Subject
    from anime_core.testing.wiring import check_names

    bare = _plugin(anime_register_generators=lambda: [GeneratorSpec("duo", build_c)])
    reg = _registry(("duo", duo), ("bare", bare))
    report = Report("bare", registry=reg)
    check_names(Subject("bare", bare, None, reg), report)
    (problem,) = report.problems
    assert "generator 'duo' is never built" in problem and "'duo.<variant>'" in problem
    assert reg.build("duo").stride == 1  # duo.b, not the bare builder (stride 2)


def test_variant_is_one_name_for_every_model_and_cyclegan_keeps_arch(registry, capsys):
    torch.manual_seed(0)
    by_variant = anime_core.build("cyclegan", variant="resnet", width=4, n_blocks=1)
    torch.manual_seed(0)
    by_arch = anime_core.build("cyclegan", arch="resnet", width=4, n_blocks=1)
    assert all(torch.equal(a, b) for a, b in zip(by_variant.state_dict().values(), by_arch.state_dict().values()))
    with pytest.raises(UsageError, match=r"variant='resnet' and arch='unet' name two networks of cyclegan"):
        anime_core.build("cyclegan", variant="resnet", arch="unet")
    with pytest.raises(UsageError, match=r"cyclegan has no arch 'resnet9'; use one of unet, resnet, pix2pix-unet"):
        anime_core.load("cyclegan", weights="unused.pt", variant="resnet9")  # refused before the file is read
    with pytest.raises(SystemExit):
        main(["run", "cyclegan", "--help"])
    assert "--variant, --arch [unet|resnet|pix2pix-unet]" in capsys.readouterr().out
    for model, builders in (("animegan", {"v1", "v2"}), ("ae", {"lab", "rgb", "skip", "vae"})):
        assert set(registry.variants(model).choices) == builders
        assert {f"{model}.{b}" for b in builders} <= set(registry.generators) and model not in registry.generators
    assert registry.variants("dcgan") is None and registry.variants("pixelsake-sr") is None


def test_the_web_form_offers_the_same_declaration(registry):
    from anime_core.ui.options import fields

    for model in ("animegan", "cyclegan", "ae"):
        (field,) = [f for f in fields(registry.model(model)) if f.label == "--variant"]
        assert field.choices == registry.variants(model).choices
