"""pytest glue: :class:`PluginContract`, one parametrized test over the table of checks."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from types import ModuleType

import pytest

from anime_core.testing.checks import CHECKS, run_contract


class ContractSkipWarning(UserWarning):
    """Something a contract check could not verify (a loss needing build options, a plugin object...)."""


class PluginContract:
    """Inherit in a plugin's tests; pytest shows one line per check (``test_contract[models]``).

    Set ``plugin`` to the entry-point name (as installed) or the plugin module; optionally ``requires``.
    """

    plugin: str | ModuleType | object | None = None
    requires: Sequence[str] | None = None

    @pytest.mark.parametrize("check", list(CHECKS))
    def test_contract(self, check: str) -> None:
        if self.plugin is None:
            raise AssertionError(f"{type(self).__name__} must set the class attribute 'plugin'")
        requires = tuple(self.requires) if self.requires is not None else None
        report = run_contract(self.plugin, requires=requires, checks=(check,))
        for reason in report.skipped:
            warnings.warn(f"{report.plugin} {check}: not checked: {reason}", ContractSkipWarning, stacklevel=2)
        if report.problems:
            pytest.fail(report.text(), pytrace=False)
