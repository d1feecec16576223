"""The table of contract checks and the functions that run them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

from anime_core.testing.configs import check_configs
from anime_core.testing.converters import check_converters
from anime_core.testing.generators import check_generators
from anime_core.testing.losses import check_builders, check_losses
from anime_core.testing.models import check_models
from anime_core.testing.report import Report, Subject, err, offline, process_registry
from anime_core.testing.styles import check_styles
from anime_core.testing.subject import load_subject
from anime_core.testing.wiring import check_light, check_load, check_names, check_references

Check = Callable[[Subject, Report], None]

#: name -> check, in the order they run; each is one line of a plugin's CI (``test_contract[models]``)
CHECKS: dict[str, Check] = {
    "load": check_load,
    "light": check_light,
    "references": check_references,
    "names": check_names,
    "configs": check_configs,
    "models": check_models,
    "generators": check_generators,
    "styles": check_styles,
    "converters": check_converters,
    "losses": check_losses,
    "builders": check_builders,
}


def run_contract(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = tuple(CHECKS),
) -> Report:
    """Run ``checks`` on ``plugin`` (entry-point name, dotted module name or plugin object).

    ``name`` is the name to register it under (default: its entry-point name). ``requires`` lists
    entry-point names of plugins it builds on; by default those providing the models its styles,
    converters and ``<model>.<variant>`` builders are for.
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    with offline():
        subject, problems = load_subject(plugin, name, requires)
        if subject is None:
            return Report(name or str(plugin), problems)
        report = Report(subject.name, registry=subject.registry)
        if "load" in checks:
            report.problems += problems
        with process_registry(subject.registry):
            for check in checks:
                try:
                    CHECKS[check](subject, report)
                except Exception as exc:  # a bug in a spec must show up as a problem, not crash the checker
                    report.problems.append(f"the '{check}' check crashed ({err(exc)})")
    return report


def check_plugin(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = tuple(CHECKS),
) -> list[str]:
    """The contract's problems for ``plugin``, each one sentence; empty when it passes."""
    return run_contract(plugin, name=name, requires=requires, checks=checks).problems


def assert_plugin_valid(
    plugin: str | ModuleType | object,
    *,
    name: str | None = None,
    requires: Sequence[str] | None = None,
    checks: Sequence[str] = tuple(CHECKS),
) -> Report:
    """Raise ``AssertionError`` listing every problem; return the report (for ``skipped``) when valid."""
    report = run_contract(plugin, name=name, requires=requires, checks=checks)
    if report.problems:
        raise AssertionError(report.text())
    return report
