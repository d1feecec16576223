"""The ``converters`` check: a sample in each foreign layout is recognised, converted and loads strictly."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from anime_core.registry import Registry
from anime_core.specs import ModelSpec, WeightsConverter
from anime_core.testing.nets import run_generator
from anime_core.testing.report import Report, Subject, err

_UNRELATED = {"contract.unrelated.weight": torch.zeros(1)}


def _samples(obj: object) -> dict[str, Mapping[str, torch.Tensor]]:
    fn = getattr(obj, "contract_samples", None)
    return dict(fn()) if callable(fn) else {}


def _derived_candidates(reg: Registry, model: ModelSpec) -> Iterator[dict[str, torch.Tensor]]:
    """The generator's own state (default options, then each style's), with and without a ``module.`` prefix."""
    option_sets: list[dict[str, Any]] = [{}] + [dict(s.generator) for s in reg.styles_of(model.name).values()]
    seen: list[dict[str, Any]] = []
    for options in option_sets:
        if options in seen:
            continue
        seen.append(options)
        try:
            state = reg.build(model, "generator", **options).state_dict()
        except Exception:
            continue
        yield dict(state)
        yield {f"module.{k}": v for k, v in state.items()}


def _safe_match(conv: WeightsConverter, state: Mapping[str, torch.Tensor]) -> bool:
    try:
        return bool(conv.matches_fn()(state))
    except Exception:
        return False


def check_converters(s: Subject, report: Report) -> None:
    """``matches`` rejects an unrelated state dict; a sample is recognised by ``load_weights`` as this layout,
    and ``convert`` yields weights that load strictly into the generator built with the returned options."""
    reg = s.registry
    try:
        samples = _samples(s.obj)
    except Exception as exc:
        report.problems.append(f"contract_samples() raised {err(exc)}")
        samples = {}
    for conv in s.own(reg.converters):
        _check_converter(reg, conv, samples.get(conv.name), report)


def _check_converter(
    reg: Registry, conv: WeightsConverter, sample: Mapping[str, torch.Tensor] | None, report: Report
) -> None:
    from anime_core.weights.files import load_into, load_weights

    c = f"converter '{conv.name}'"
    model = reg.models.get(conv.model)
    if model is None:
        report.problems.append(f"{c} is for unknown model '{conv.model}'")
        return
    try:
        if conv.matches_fn()(dict(_UNRELATED)):
            report.problems.append(f"{c} matches an unrelated state dict; recognise the layout from its keys")
    except Exception as exc:
        report.problems.append(f"{c} matches() raised on an unrelated state dict ({err(exc)})")
    if sample is None:
        sample = next((st for st in _derived_candidates(reg, model) if _safe_match(conv, st)), None)
        if sample is None:
            report.problems.append(
                f"{c}: no sample in its layout; define contract_samples() in the plugin module returning "
                f"{{'{conv.name}': foreign_state_dict}}"
            )
            return
    elif not _safe_match(conv, sample):
        report.problems.append(f"{c} does not match its own contract sample")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "foreign.pt"
        torch.save(dict(sample), path)
        try:
            loaded = load_weights(path, conv.model, reg)
        except Exception as exc:
            report.problems.append(f"{c}: load_weights failed on its sample ({err(exc)})")
            return
    if loaded.layout != conv.name:
        report.problems.append(f"{c}: its sample is recognised as layout '{loaded.layout}', not '{conv.name}'")
        return
    try:
        native, options = conv.convert_fn()(sample)
        gen = reg.build(model, "generator", **dict(options))
        load_into(gen, native, f"the output of {c}")
    except Exception as exc:
        report.problems.append(f"{c}: converted weights do not load strictly ({err(exc)})")
        return
    report.problems += run_generator(model, gen, f"{c} generator")[1]
