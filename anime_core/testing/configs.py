"""The ``configs`` check: the default YAML and every preset fit the model's schema key for key (walked
both ways: every key the YAML sets is declared, every declared key is set), and the
``generator:``/``discriminator:`` sections are exactly builder options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anime_core.config import deep_merge, model_defaults, read_yaml, resolve, to_dict, validate
from anime_core.errors import AnimeError
from anime_core.registry import call_builder
from anime_core.schema import RunConfig, compare
from anime_core.specs import ModelSpec
from anime_core.testing.report import Report, Subject, err


def check_configs(s: Subject, report: Report) -> None:
    for spec in s.own(s.registry.models):
        m = f"model '{spec.name}'"
        if spec.config is None:
            report.problems.append(f"{m} ships no default config (ModelSpec.config = .../configs/default.yaml)")
            continue
        try:
            own = read_yaml(spec.config)
            defaults = model_defaults(spec)
        except AnimeError as exc:
            report.problems.append(f"{m}: {exc}")
            continue
        if isinstance(own.get("data"), Mapping) and "kind" in own["data"]:
            report.problems.append(f"{m} default config sets data.kind, which nothing reads; name the dataset kind "
                                   f"in ModelSpec.dataset instead")
        # the schema and the YAML key for key, both ways (the core keys for a model without a schema)
        undeclared, unset = compare(spec.schema_class() or RunConfig, defaults)
        for key in undeclared:
            if key != "data.kind":  # named above
                report.problems.append(f"{m} default config ({spec.config}) sets '{key}', which its schema does "
                                       f"not declare")
        for key in unset:
            report.problems.append(f"{m} schema declares '{key}', which its default config ({spec.config}) does "
                                   f"not set")
        defaults_ok = not (undeclared or unset)
        if defaults_ok:
            try:
                validate(spec, defaults)  # types, ranges, choices
            except AnimeError as exc:
                report.problems.append(f"{m} default config ({spec.config}): {exc}")
                defaults_ok = False
        configs: dict[str, Any] = {"default config": defaults}
        for preset, path in spec.presets.items():
            label = f"preset '{preset}'"
            try:
                # as `anime train --config PRESET` reads it: unknown keys, the schema
                configs[label] = (
                    to_dict(resolve(spec, preset, base=defaults)) if defaults_ok
                    else deep_merge(defaults, read_yaml(path))
                )
            except AnimeError as exc:
                report.problems.append(f"{m} {label} ({path}): {exc}")
        _check_sections(s, spec, configs, report)


def _check_sections(s: Subject, spec: ModelSpec, configs: Mapping[str, Any], report: Report) -> None:
    m = f"model '{spec.name}'"
    reg = s.registry
    for part, builder in (("generator", spec.generator), ("discriminator", spec.discriminator)):
        table: Mapping[str, Any] = reg.generators if part == "generator" else reg.discriminators
        variants = reg.variants(spec) if part == "generator" else None
        if part == "generator" and spec.variant_key and variants is None:
            report.problems.append(f"{m} has variant_key '{spec.variant_key}' but no generator is registered as "
                                   f"'{builder}.<variant>'")
            continue
        if variants is None and builder is not None and builder not in table:
            report.problems.append(f"{m} names unknown {part} builder '{builder}'")
            continue
        built: list[Any] = []
        for label, cfg in configs.items():
            section = cfg.get(part) or {}
            if builder is None:
                if section:
                    report.problems.append(f"{m} {label} has a {part}: section but the model has no {part}")
                continue
            if section in built:  # presets often keep a net's options: build each distinct section once
                continue
            built.append(section)
            try:
                if variants is not None:  # the core picks the <model>.<variant> builder, as for a run
                    reg.build(spec, part, **section)
                else:
                    call_builder(part, builder, table[builder].builder(), dict(section))
            except Exception as exc:
                report.problems.append(f"{m} {label}: {part} section does not build ({err(exc)})")
