"""The ``generators`` check: every registered generator, each variant of a model, follows :mod:`anime_core.contract`."""

from __future__ import annotations

import functools

from anime_core.contract import problems
from anime_core.specs import GeneratorSpec, ModelSpec
from anime_core.testing.report import Report, Subject, err
from anime_core.testing.wiring import model_of


def check_generators(s: Subject, report: Report) -> None:
    """Build each of the plugin's generators as its model does (on the meta device: shapes, no memory) and check
    the attributes the core reads: ``stride`` for translate models, ``latent_dim`` for generate models, and the
    optional ones (``min_side``, ``scale``, ``num_classes``...) where present."""
    from anime_core.weights.files import _build_on_meta

    reg = s.registry
    for gen in s.own(reg.generators):
        found = _model_and_options(gen, reg.models, s)
        if found is None:
            continue  # not a network of a model: the names and builders checks cover it
        spec, options = found
        what = f"generator '{gen.name}' ({spec.kind} model '{spec.name}')"
        build = functools.partial(reg.build, spec, "generator")
        try:
            net = _build_on_meta(build, options) or build(**options)
        except Exception as exc:  # the configs and models checks say why in detail
            report.problems.append(f"{what} does not build from the model's defaults ({err(exc)})")
            continue
        report.problems += [f"{what}: {p}" for p in problems(net, spec.kind)]


def _model_and_options(gen: GeneratorSpec, models: dict[str, ModelSpec], s: Subject) -> tuple[ModelSpec, dict] | None:
    """The model ``gen`` is a network of and the options that build it: ``{}`` or ``{variant_key: choice}``."""
    model = models.get(model_of(gen.name, models) or "")
    if model is None:
        return None
    variants = s.registry.variants(model)
    if variants is None:
        return (model, {}) if gen.name == model.generator else None
    prefix = f"{variants.prefix}."
    return (model, {variants.name: gen.name[len(prefix):]}) if gen.name.startswith(prefix) else None
