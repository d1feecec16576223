"""Broken plugins (raise on import, clash, style without a hash, bad specs) are named in a clear
message, caught by the contract, and never break the other plugins or the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import tiny_anime_plugin
from helpers import subprocess_env
from torch import nn

from anime_core import hookimpl
from anime_core.registry import load_registry
from anime_core.specs import GeneratorSpec, ModelSpec, StyleSpec, WeightsConverter, WeightsSource
from anime_core.testing import check_plugin, run_contract


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_style_without_hash_names_the_plugin_and_fails_the_contract():
    bad = _plugin(anime_register_styles=lambda: [StyleSpec("tiny", "nohash", WeightsSource("https://e.org/w.pt"))])
    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("nohash-plugin", bad)], entry_points=False)
    assert "tiny:nohash" not in reg.styles and "tiny:demo" in reg.styles
    assert any("nohash-plugin: style 'tiny:nohash' has no sha256" in e for e in reg.load_errors)
    problems = check_plugin(bad, name="nohash-plugin", requires=())
    assert any("no sha256 or git_sha1" in p for p in problems)


def test_clashing_name_fails_the_contract_of_the_later_plugin():
    clash = _plugin(anime_register_generators=lambda: [GeneratorSpec("tiny.g", nn.Identity)])
    problems = check_plugin(clash, name="clasher", requires=["tiny_anime_plugin"])
    assert any("'tiny.g'" in p and "'clasher'" in p for p in problems)


def test_contract_catches_bad_shapes_missing_stride_configs_and_hashes(tmp_path):
    class NoStride(nn.Module):
        def forward(self, x):
            return x

    class Halves(nn.Module):
        stride = 2

        def forward(self, x):
            return x[..., ::2, ::2]

    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  batch_size: many\n")
    preset = tmp_path / "preset.yaml"
    preset.write_text("generator:\n  widht: 3\n")
    bad = _plugin(
        anime_register_generators=lambda: [GeneratorSpec("b.nostride", NoStride), GeneratorSpec("b.halves", Halves)],
        anime_register_models=lambda: [
            ModelSpec("b1", "translate", "b.nostride", paper="x"),
            ModelSpec("b2", "translate", "b.halves", config=config, presets={"p": preset}),
        ],
        anime_register_styles=lambda: [StyleSpec("b1", "s", WeightsSource("ftp://x/w.pt", sha256="abc", layout="odd"))],
        anime_weights_converters=lambda: [WeightsConverter("b.any", "b2", lambda s: True, lambda s: (dict(s), {}))],
    )
    text = "\n".join(run_contract(bad, name="bad", requires=()).problems)
    assert "has no int attribute 'stride'" in text
    assert "maps (1, 3, 32, 34) to (1, 3, 16, 17), expected (1, 3, 32, 34)" in text
    assert "model 'b2' cites no paper" in text
    assert "config key 'train.batch_size' expects an integer" in text
    assert "preset 'p': generator section does not build" in text and "widht" in text
    assert "URL 'ftp://x/w.pt' is not an http(s) URL" in text and "sha256 'abc' is not 64 hex digits" in text
    assert "layout 'odd' is neither 'native' nor a converter" in text and "no license note" in text
    assert "converter 'b.any' matches an unrelated state dict" in text


def test_converter_round_trip_uses_contract_samples():
    """The tiny plugin's legacy converter is checked with a sample the plugin module supplies."""
    good = types.SimpleNamespace(
        **{k: getattr(tiny_anime_plugin, k) for k in dir(tiny_anime_plugin) if k.startswith("anime_")},
        contract_samples=lambda: {"tiny.legacy": {f"legacy.{k}": v for k, v in _tiny_state(4).items()}},
    )
    assert not [p for p in check_plugin(good, name="tiny", checks=("converters",)) if "converter" in p]
    without = check_plugin(tiny_anime_plugin, name="tiny", checks=("converters",))
    assert any("define contract_samples()" in p for p in without)


def _tiny_state(width: int) -> dict:
    return {k.removeprefix("body."): v for k, v in tiny_anime_plugin.TinyGenerator(width).state_dict().items()}


def test_import_error_is_one_problem_naming_the_module(tmp_path, monkeypatch):
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('kaboom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (problem,) = check_plugin("explodes_on_import")
    assert "failed to import explodes_on_import" in problem and "kaboom" in problem


def _broken_site(root: Path) -> Path:
    """A folder where two broken plugins are *installed* (package + dist-info + entry point)."""
    site = root / "site"
    (site / "broken_plugin").mkdir(parents=True)
    (site / "broken_plugin" / "__init__.py").write_text("raise ImportError('missing dependency frobnicate')\n")
    (site / "clashing_plugin.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from anime_core import hookimpl
            from anime_core.specs import GeneratorSpec, StyleSpec, WeightsSource

            @hookimpl
            def anime_register_generators():
                return [GeneratorSpec("animegan.v1", nn.Identity)]

            @hookimpl
            def anime_register_styles():
                return [StyleSpec("animegan", "unverified", WeightsSource("https://e.org/w.pt"))]
            """
        )
    )
    for dist, ep in (("broken-plugin", "broken = broken_plugin"), ("clashing-plugin", "clashing = clashing_plugin")):
        info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "entry_points.txt").write_text(f"[anime.plugins]\n{ep}\n")
    return site


@pytest.mark.slow
def test_installed_broken_plugins_are_reported_and_the_rest_works(tmp_path):
    env = subprocess_env(_broken_site(tmp_path))
    code = textwrap.dedent(
        """
        import json, anime_core
        from anime_core.testing import check_plugin
        reg = anime_core.get_registry()
        print(json.dumps({
            "models": anime_core.list_models(),
            "errors": reg.load_errors,
            "generator_owner": reg.generators["animegan.v1"].plugin,
            "contract_broken": check_plugin("broken"),
        }))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"animegan", "faststyle"} <= set(data["models"])  # the good plugins are unaffected
    errors = "\n".join(data["errors"])
    assert "broken: failed to load (ImportError: missing dependency frobnicate)" in errors
    assert "clashing: cannot register generator 'animegan.v1': plugin 'animegan' already registers it" in errors
    assert "clashing: style 'animegan:unverified' has no sha256" in errors
    assert data["generator_owner"] == "animegan"
    assert "frobnicate" in data["contract_broken"][0]

    cli = subprocess.run(
        [sys.executable, "-m", "anime_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    listed = json.dumps(json.loads(cli.stdout))
    assert "frobnicate" in listed and "clashing" in listed
    runs = subprocess.run(
        [sys.executable, "-m", "anime_core.cli", "list"], capture_output=True, text=True, env=env, timeout=300
    )
    assert runs.returncode == 0 and "faststyle" in runs.stdout
