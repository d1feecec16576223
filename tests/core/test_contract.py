"""The plugin contract: every installed plugin passes it, one test line per (plugin, check), and each
check of the new contract (light modules, references, names, typed configs) catches what it names.

A plugin that fails to import fails here (it is a contract problem), it is never skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import tiny_anime_plugin
from helpers import subprocess_env

from anime_core import hookimpl
from anime_core.specs import DiscriminatorSpec, GeneratorSpec, ModelSpec
from anime_core.testing import CHECKS, check_plugin, installed_plugins, run_contract

EXPECTED = {"animegan", "cyclegan", "dcgan", "ae", "example"}
TINY = "tiny_anime_plugin"


def test_the_paper_plugins_and_the_example_are_installed():
    assert set(installed_plugins()) >= EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("plugin", installed_plugins())
def test_contract(plugin, check):
    report = run_contract(plugin, checks=(check,))
    assert report.registry is not None and plugin in report.registry.plugins
    if report.problems:
        pytest.fail(report.text(), pytrace=False)


def test_unknown_plugin_is_one_clear_problem():
    (problem,) = check_plugin("no_such_plugin_xyz")
    assert "no installed plugin or module named 'no_such_plugin_xyz'" in problem


def test_unknown_check_name_is_rejected():
    with pytest.raises(ValueError, match="choose from"):
        check_plugin("example", checks=("model",))
    assert list(CHECKS)[:2] == ["load", "light"] and all(callable(fn) for fn in CHECKS.values())


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def test_light_check_names_the_line_that_imports_torch(tmp_path, monkeypatch):
    (tmp_path / "heavy_anime_plugin.py").write_text(
        textwrap.dedent(
            """
            import torch  # what an entry-point module must not do
            from anime_core import hookimpl
            from anime_core.specs import GeneratorSpec

            @hookimpl
            def anime_register_generators():
                return [GeneratorSpec("heavy", torch.nn.Identity)]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (problem,) = check_plugin("heavy_anime_plugin", checks=("light",))
    assert "importing heavy_anime_plugin imports torch" in problem and "heavy_anime_plugin.py:2" in problem
    assert check_plugin(TINY, checks=("light",)) == []  # hooks here, nets and tasks behind references


def test_references_that_do_not_resolve_name_the_module():
    bad = _plugin(
        anime_register_generators=lambda: [GeneratorSpec("refs", "no_such_module_xyz.nets:build_generator")],
        anime_register_models=lambda: [
            ModelSpec("refs", "translate", "refs", task=f"{TINY}.nets:TinyGenerator", schema=f"{TINY}.task:TinyTask")
        ],
    )
    problems = check_plugin(bad, name="refs", requires=(), checks=("references",))
    assert len(problems) == 3
    assert "generator 'refs' build: cannot import 'no_such_module_xyz.nets'" in problems[0]
    assert "model 'refs' task is not a TrainingTask subclass" in problems[1]
    assert "model 'refs' schema is not a dataclass subclassing anime_core.schema.RunConfig" in problems[2]
    assert check_plugin(TINY, checks=("references",)) == []


def test_names_follow_model_variant_and_d():
    named = _plugin(
        anime_register_generators=lambda: [GeneratorSpec("tiny.v9", "x:y"), GeneratorSpec("loose", "x:y")],
        anime_register_discriminators=lambda: [DiscriminatorSpec("tiny.critic", "x:y")],
    )
    problems = check_plugin(named, name="named", requires=[TINY], checks=("names",))
    assert len(problems) == 2  # tiny.v9 is a variant of another plugin's model: fine
    assert "generator 'loose' is not named after a model" in problems[0] and "tiny, tinygen" in problems[0]
    assert "discriminator 'tiny.critic' is not named '<model>.d'" in problems[1]


def test_configs_fit_the_schema(tmp_path):
    tiny_yaml = Path(tiny_anime_plugin.__file__).parent / "configs" / "tiny.yaml"
    lacking = tmp_path / "lacking.yaml"
    lacking.write_text(tiny_yaml.read_text().replace("  l1_weight: 10.0\n", ""))
    old = tmp_path / "old.yaml"
    old.write_text("optim:\n  learning_rat: 0.1\n")
    loose = tmp_path / "loose.yaml"
    loose.write_text("data:\n  kind: unpaired\noptim:\n  lr: 0.1\n  learning_rate: 0.1\n")
    schema = f"{TINY}.config:TinyConfig"
    models = _plugin(
        anime_register_models=lambda: [
            ModelSpec("typed", "translate", "tiny.g", "tiny.d", config=lacking, schema=schema, paper="x"),
            ModelSpec(
                "loose",
                "translate",
                "tiny.g",
                config=loose,
                presets={"old": old},
                dataset="no_such_kind",
                paper="x",
            ),
        ]
    )
    report = run_contract(models, name="models", requires=[TINY], checks=("configs", "models"))
    text = "\n".join(report.problems)
    assert "model 'typed' schema declares 'loss.l1_weight', which its default config" in text
    assert "model 'loose' default config sets data.kind" in text
    # a model without a schema has the core keys only: a section of its own is one no code may read
    assert "model 'loose' default config (" in text and "sets 'optim', which its schema does not declare" in text
    assert "preset 'old'" in text and "unknown config key 'optim.learning_rat'" in text
    assert "model 'loose' names unknown dataset kind 'no_such_kind'" in text
    assert text.count("model 'typed'") == 1  # one problem, not a cascade


def test_tiny_plugin_passes_all_but_the_converter_sample():
    report = run_contract(TINY)
    (problem,) = report.problems
    assert "converter 'tiny.legacy': no sample in its layout" in problem


@pytest.mark.slow
def test_plugin_contract_is_one_pytest_line_per_check(tmp_path):
    """What a third party's CI shows: `test_contract[<check>]` once per check, failing only the broken one."""
    test = tmp_path / "test_tiny_contract.py"
    test.write_text(f"from anime_core.testing import PluginContract\n\nclass TestTiny(PluginContract):\n"
                    f"    plugin = '{TINY}'\n")
    env = subprocess_env(Path(tiny_anime_plugin.__file__).parent.parent, ANIME_HOME=str(tmp_path / "home"),
                         ANIME_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(test)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    results = dict(re.findall(r"::TestTiny::test_contract\[(\w+)\] (PASSED|FAILED|SKIPPED|ERROR)", out.stdout))
    assert list(results) == list(CHECKS), out.stdout[-2000:]
    assert {k for k, v in results.items() if v != "PASSED"} == {"converters"}
    assert "define contract_samples()" in out.stdout and out.returncode == 1


def test_sample_grids_without_row_labels_are_a_problem(monkeypatch):
    """CycleGAN's sample grid has four rows (photo, G(photo), anime, F(anime)): without names it fails the check."""
    from anime_plugin_cyclegan.task import CycleGANTask

    assert check_plugin("anime_plugin_cyclegan.plugin", checks=("models",)) == []
    monkeypatch.setattr(CycleGANTask, "sample_rows", ())
    problems = check_plugin("anime_plugin_cyclegan.plugin", checks=("models",))
    assert problems == ["model 'cyclegan': CycleGANTask.sample() returns 4 rows of 2 images that cannot be "
                        "labelled: set sample_rows to one name per row"]
