"""Registry and hook behaviour: built-ins, attribution, clashes, invalid specs, lookups, builders."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import tiny_anime_plugin
from helpers import subprocess_env
from torch import nn

import anime_core
from anime_core import hookimpl
from anime_core.errors import PluginError, UsageError
from anime_core.registry import load_registry
from anime_core.specs import GeneratorSpec, StyleSpec, WeightsSource


def test_builtin_plugin_registers_standard_losses_and_datasets():
    reg = load_registry(entry_points=False)
    assert {"lsgan", "bce", "hinge", "wgan", "l1", "huber", "feature_matching"} <= set(reg.losses)
    assert set(reg.datasets) == {"images", "unpaired", "paired", "noise"}
    assert all(spec.plugin == "anime-core" for spec in reg.losses.values())


def test_specs_are_attributed_to_their_plugin(tiny_registry):
    assert tiny_registry.models["tiny"].plugin == "tiny"
    assert tiny_registry.generators["tiny.g"].plugin == "tiny"
    assert tiny_registry.plugins["tiny"].counts == {
        "generators": 2,
        "discriminators": 1,
        "models": 2,
        "styles": 1,
        "converters": 1,
    }


def _plugin_with_generator(name: str) -> types.SimpleNamespace:
    @hookimpl
    def anime_register_generators():
        return [GeneratorSpec(name, nn.Identity)]

    return types.SimpleNamespace(anime_register_generators=anime_register_generators)


def test_clashing_name_is_an_error_naming_both_plugins():
    reg = load_registry(
        extra=[("first", _plugin_with_generator("x.g")), ("second", _plugin_with_generator("x.g"))], entry_points=False
    )
    assert reg.generators["x.g"].plugin == "first"  # the first registration stays usable
    (err,) = reg.plugins["second"].errors
    assert "'first'" in err and "'second'" in err and "x.g" in err
    with pytest.raises(PluginError, match="first.*second"):
        load_registry(
            extra=[("first", _plugin_with_generator("x.g")), ("second", _plugin_with_generator("x.g"))],
            entry_points=False,
            strict=True,
        )


def test_style_without_hash_or_for_unknown_model_is_rejected():
    @hookimpl
    def anime_register_styles():
        return [
            StyleSpec("tiny", "nohash", WeightsSource("https://example.org/w.pt")),
            StyleSpec("ghost", "s", WeightsSource("https://example.org/w.pt", sha256="a" * 64)),
        ]

    bad = types.SimpleNamespace(anime_register_styles=anime_register_styles)
    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("bad", bad)], entry_points=False)
    assert "tiny:nohash" not in reg.styles and "ghost:s" not in reg.styles
    errors = " ".join(reg.plugins["bad"].errors)
    assert "no sha256" in errors and "unknown model 'ghost'" in errors
    assert "tiny" in reg.models  # the good plugin is unaffected


def test_hook_that_raises_is_recorded_and_others_still_load():
    @hookimpl
    def anime_register_models():
        raise RuntimeError("boom")

    reg = load_registry(
        extra=[
            ("tiny", tiny_anime_plugin),
            ("broken", types.SimpleNamespace(anime_register_models=anime_register_models)),
        ],
        entry_points=False,
    )
    assert "tiny" in reg.models
    assert any("boom" in e for e in reg.plugins["broken"].errors)


def test_unknown_names_suggest_the_closest(tiny_registry):
    with pytest.raises(UsageError, match="did you mean 'tiny'"):
        tiny_registry.model("tinny")
    with pytest.raises(UsageError, match="did you mean 'demo'"):
        tiny_registry.style("tiny", "dem")
    with pytest.raises(UsageError, match="did you mean 'lsgan'"):
        tiny_registry.loss("lsgn")


def test_build_uses_default_config_and_overrides(tiny_registry):
    g = anime_core.build("tiny", "generator")
    assert g.body[0].out_channels == 8  # tiny.yaml generator.width
    wide = anime_core.build("tiny", "generator", width=4)
    assert wide.body[0].out_channels == 4
    with pytest.raises(UsageError, match="no option 'widht'.*did you mean 'width'"):
        anime_core.build("tiny", "generator", widht=4)
    with pytest.raises(UsageError, match="has no discriminator"):
        anime_core.build("tinygen", "discriminator")
    assert anime_core.list_models() == ["tiny", "tinygen"]


def test_plugin_is_discovered_through_a_real_entry_point(tiny_site):
    """The tiny plugin installed as a distribution (dist-info + entry point) shows up in `anime list`."""
    out = subprocess.run(
        [sys.executable, "-m", "anime_core.cli", "list", "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(tiny_site),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    models = {m["name"]: m for m in json.loads(out.stdout)}
    assert models["tiny"]["plugin"] == "tiny" and models["tiny"]["version"] == "0.1.0"
    assert models["tiny"]["styles"] == ["demo"] and models["tinygen"]["kind"] == "generate"
