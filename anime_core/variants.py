"""Choosing a model's network: its variants are the generators registered as ``<model>.<variant>``.

As in timm, where each variant of an architecture is one registered name, a plugin declares each
network a model can have once, by registering its builder under ``<generator>.<variant>``
(``animegan.v1``, ``animegan.v2``; ``cyclegan.unet``, ``cyclegan.resnet``...), and sets
``ModelSpec.variant_key`` to the ``generator:`` config key that names one (``variant``; cyclegan
keeps its ``arch``). The core does the rest, one way for every model:

- ``anime run/export MODEL --variant NAME`` (cyclegan also ``--arch``), the web app's field, and
  ``anime_core.build``/``load(variant=...)`` offer exactly the registered names;
- :meth:`Variants.choose` resolves a generator section to one registered builder and its options.
  The config holds the options of every variant in one section: an option the chosen builder does
  not take is left out when it is ``null`` or at the model's default, and is a usage error naming
  the variants that take it otherwise (never silently dropped);
- a third-party plugin adds a variant to another plugin's model by registering one more builder.

Reads specs and YAML only: no torch, so ``anime run MODEL --help`` can list the choices.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anime_core.defaults import model_defaults
from anime_core.errors import UsageError

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.specs import GeneratorSpec, ModelSpec

#: the one name of the choice, for every model (``--variant``, ``variant=``)
VARIANT = "variant"


@dataclass(frozen=True)
class Variants:
    """The networks a model chooses among, from the builders registered as ``<prefix>.<choice>``.

    ``name`` is the generator option that holds the choice (``variant``; cyclegan ``arch``),
    ``default`` the model's default config value of it (else the first registered choice).
    """

    model: str
    name: str
    prefix: str
    choices: tuple[str, ...]
    default: str

    @property
    def aliases(self) -> tuple[str, ...]:
        """The keyword names of the choice: ``variant`` first, then the model's own key if it differs."""
        return tuple(dict.fromkeys((VARIANT, self.name)))

    def builder_name(self, choice: str) -> str:
        return f"{self.prefix}.{choice}"

    def canonical(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with ``variant=`` under the model's own key (cyclegan: ``arch``)."""
        out = dict(options)
        if self.name != VARIANT and VARIANT in out:
            value = out.pop(VARIANT)
            if self.name in out and out[self.name] != value:
                raise UsageError(f"variant={value!r} and {self.name}={out[self.name]!r} name two networks of "
                                 f"{self.model}; give one of them")
            out[self.name] = value
        return out

    def check(self, choice: Any) -> str:
        """``choice`` if it is registered, else a usage error listing the choices."""
        if choice not in self.choices:
            raise UsageError(f"unknown {self.model} {self.name} '{choice}'; use one of {', '.join(self.choices)}")
        return str(choice)

    def choose(self, registry: Registry, options: Mapping[str, Any],
               defaults: Mapping[str, Any]) -> tuple[str, GeneratorSpec, dict[str, Any]]:
        """``(builder name, its spec, its options)`` for a full generator section ``options``.

        ``defaults`` is the model's default ``generator:`` section: an option the chosen builder does
        not take may stay there at that value (or ``null``); another value is a usage error.
        """
        opts = self.canonical(options)
        choice = self.check(opts.pop(self.name, self.default))
        name = self.builder_name(choice)
        spec = registry.generator(name)
        taken = _parameters(spec.builder())
        kept: dict[str, Any] = {}
        for key, value in opts.items():
            if value is None:
                continue  # null: the variant's own default
            if taken is None or key in taken:
                kept[key] = value
            elif key in defaults and _same(value, defaults[key]):
                continue  # another variant's option, left at its default
            else:
                owners = [c for c in self.choices if key in (_parameters(self._builder(registry, c)) or ())]
                if not owners:
                    kept[key] = value  # no variant takes it: the builder's own "has no option" error names it
                    continue
                raise UsageError(
                    f"generator option {key} does not apply to {self.name}={choice} (only to {self.name} "
                    f"{' and '.join(owners)}); leave it at its default or set {self.name}={owners[0]}"
                )
        return name, spec, kept

    def keywords(self, registry: Registry) -> list[str] | None:
        """Every keyword a variant's builder takes, after the choice's own names; ``None``: any (``**options``)."""
        names = list(self.aliases[::-1])  # the model's key first (``arch``), then ``variant``
        for choice in self.choices:
            params = _parameters(self._builder(registry, choice))
            if params is None:
                return None
            names += params
        return list(dict.fromkeys(names))

    def _builder(self, registry: Registry, choice: str) -> Callable[..., Any]:
        return registry.generator(self.builder_name(choice)).builder()


def variants_of(spec: ModelSpec, registry: Registry, defaults: Mapping[str, Any] | None = None) -> Variants | None:
    """The model's :class:`Variants`, or ``None`` for a model with one network (no ``variant_key``).

    ``defaults``: the model's default ``generator:`` section, if the caller has read it already.
    """
    if not spec.variant_key:
        return None
    prefix = f"{spec.generator}."
    choices = tuple(name[len(prefix):] for name in registry.generators if name.startswith(prefix))
    if not choices:
        return None
    if defaults is None:
        defaults = model_defaults(spec).get("generator") or {}
    default = defaults.get(spec.variant_key)
    return Variants(spec.name, spec.variant_key, spec.generator, choices,
                    default if default in choices else choices[0])


def _parameters(build: Callable[..., Any]) -> list[str] | None:
    """Keyword names ``build`` takes; ``None`` when it takes any (``**options``)."""
    params = inspect.signature(build).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _same(a: Any, b: Any) -> bool:
    """Equal as config values (a tuple and a list of the same items are the same option)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)
