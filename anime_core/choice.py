"""The choice of a model's network as an option: ``--variant`` on the command line, a field in the web app.

A model with several registered networks (``<generator>.<variant>`` builders, :mod:`anime_core.variants`)
offers one option naming them; ``anime run``, ``anime export`` and the web app's forms
(:mod:`anime_core.ui.options`) all build it here, so they offer the same choices. Specs and YAML only, no torch.
"""

from __future__ import annotations

import click

from anime_core.registry import get_registry
from anime_core.specs import ModelSpec


def architecture_params(spec: ModelSpec) -> list[click.Parameter]:
    """``--variant`` (cyclegan also ``--arch``): the model's registered networks, for models that have several."""
    variants = get_registry().variants(spec)
    if variants is None or {variants.name, *variants.aliases} & {p.name for p in spec.run_options}:
        return []
    flags = [f"--{alias.replace('_', '-')}" for alias in variants.aliases]
    return [click.Option(
        [*flags, variants.name],
        type=click.Choice(variants.choices),
        default=None,  # not given: the file or style decides
        help=f"The generator network ({spec.generator}.<variant>), for a weights file whose tensors do not decide it "
             f"(e.g. a plain state dict) [default: what the file or style records, else {variants.default}]; "
             f"contradicting them is an error.",
    )]
