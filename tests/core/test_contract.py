"""Every installed plugin (the four paper plugins and the example) passes the plugin contract.

Parametrised over the ``anime.plugins`` entry points: a plugin that fails to import fails here
(it is a contract problem), it is never skipped.
"""

from __future__ import annotations

import pytest

from anime_core.testing import CHECKS, assert_plugin_valid, check_plugin, installed_plugins

EXPECTED = {"animegan", "cyclegan", "dcgan", "ae", "example"}


def test_the_paper_plugins_and_the_example_are_installed():
    assert set(installed_plugins()) >= EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("plugin", installed_plugins())
def test_installed_plugin_passes_the_contract(plugin):
    report = assert_plugin_valid(plugin)
    assert report.registry is not None and plugin in report.registry.plugins


def test_unknown_plugin_is_one_clear_problem():
    (problem,) = check_plugin("no_such_plugin_xyz")
    assert "no installed plugin or module named 'no_such_plugin_xyz'" in problem


def test_unknown_check_name_is_rejected():
    with pytest.raises(ValueError, match="choose from"):
        check_plugin("example", checks=("model",))
    assert "models" in CHECKS
