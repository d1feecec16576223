"""Issue 12 items 4-6: hostile or broken plugins cannot write outside the cache, take over
first-party names, or break commands with garbage from their hooks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from helpers import subprocess_env

from anime_core import hookimpl
from anime_core.registry import load_registry
from anime_core.specs import GeneratorSpec, ModelSpec, StyleSpec, WeightsFile, WeightsSource

SHA = "0" * 64


def _plugin(**hooks):
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


@pytest.mark.parametrize(
    ("style", "source"),
    [
        ("../../evil", WeightsSource("https://e.org/w.pt", sha256=SHA)),
        ("ok", WeightsSource("https://e.org/w.pt", sha256=SHA, filename="../../../.bashrc")),
        ("ok", WeightsSource("https://e.org/..", sha256=SHA)),
        ("a/b", WeightsSource("https://e.org/w.pt", sha256=SHA)),
        ("ok", WeightsSource.of(WeightsFile("https://e.org/w.index", sha256=SHA),
                                WeightsFile("https://e.org/x", sha256=SHA, filename="../w.data"))),
    ],
)
def test_style_and_file_names_that_leave_the_cache_are_refused(style, source):
    bad = _plugin(anime_register_styles=lambda: [StyleSpec("tiny", style, source)])
    import tiny_anime_plugin

    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("evil", bad)], entry_points=False)
    assert not [k for k in reg.styles if k.startswith("tiny:") and k != "tiny:demo"]
    assert any("outside the weights cache" in e for e in reg.plugins["evil"].errors), reg.plugins["evil"].errors


def test_garbage_from_hooks_is_contained():
    """A hook returning 42, a style without a source and a spec of the wrong type are named; the rest loads."""
    import tiny_anime_plugin

    garbage = _plugin(
        anime_register_models=lambda: 42,
        anime_register_styles=lambda: [StyleSpec("tiny", "nosrc", None)],  # type: ignore[arg-type]
        anime_register_generators=lambda: ["not a spec", GeneratorSpec("g.ok", "x.y:z")],
    )
    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("garbage", garbage)], entry_points=False)
    errors = "\n".join(reg.plugins["garbage"].errors)
    assert "returned int, expected a list of specs" in errors
    assert "style 'tiny:nosrc' has no WeightsSource" in errors
    assert "returned str from the generators hook" in errors
    assert "g.ok" in reg.generators and "tiny" in reg.models  # the valid parts still work


def _takeover_site(root: Path) -> Path:
    """An installed third-party plugin whose entry point sorts before 'animegan' and claims its names."""
    site = root / "site"
    site.mkdir()
    (site / "aaa_takeover.py").write_text(
        textwrap.dedent(
            f"""
            from anime_core import hookimpl
            from anime_core.specs import ModelSpec, StyleSpec, WeightsSource

            @hookimpl
            def anime_register_models():
                return [ModelSpec("animegan", "translate", "animegan", paper="x")]

            @hookimpl
            def anime_register_styles():
                return [StyleSpec("animegan", "paprika", WeightsSource("https://evil.example/p.pt", sha256="{SHA}"))]
            """
        )
    )
    info = site / "aaa_takeover-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aaa-takeover\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[anime.plugins]\naaa = aaa_takeover\n")
    return site


@pytest.mark.slow
def test_third_party_cannot_take_over_first_party_names(tmp_path):
    env = subprocess_env(_takeover_site(tmp_path))
    code = textwrap.dedent(
        """
        import json
        from anime_core.registry import get_registry
        reg = get_registry()
        print(json.dumps({"model": reg.models["animegan"].plugin, "url": reg.styles["animegan:paprika"].source.url,
                          "errors": reg.plugins["aaa"].errors}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["model"] == "animegan" and "github.com" in data["url"]
    assert any("plugin 'aaa' is ignored" in e and "'animegan'" in e for e in data["errors"]), data["errors"]
    cmd = [sys.executable, "-m", "anime_core.cli", "weights", "list"]
    listing = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "plugin 'aaa' is ignored" in listing.stderr  # the warning is shown where the URLs are listed


def test_every_file_of_a_several_file_style_needs_a_hash():
    import tiny_anime_plugin

    src = WeightsSource.of(WeightsFile("https://e.org/w.index", sha256=SHA), WeightsFile("https://e.org/w.data"))
    bad = _plugin(anime_register_styles=lambda: [StyleSpec("tiny", "two", src)])
    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("bad", bad)], entry_points=False)
    assert "tiny:two" not in reg.styles
    assert "no sha256 or git_sha1 hash for w.data" in reg.plugins["bad"].errors[0]


def test_model_names_must_be_plain():
    bad = _plugin(anime_register_models=lambda: [ModelSpec("../x", "translate", "g")])
    reg = load_registry(extra=[("bad", bad)], entry_points=False)
    assert "../x" not in reg.models and "outside the weights cache" in reg.plugins["bad"].errors[0]
