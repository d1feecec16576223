"""A model's own ``anime run`` options (``ModelSpec.run_options``, click) as web form fields.

The app has no UI code per model: each click option becomes a :class:`Field` (a choice, a
number, a checkbox, a file upload or a text box) and the values a form sends back are checked
and converted by click itself (:func:`convert`), so a value the command line refuses is refused
here with the same message. The architecture choice of ``anime run --variant`` (the model's
registered ``<model>.<variant>`` builders, :func:`anime_core.choice.architecture_params`) comes
first, as on the command line; left blank, the weights file or style decides. No gradio and no
torch here: the mapping is tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click

from anime_core.choice import architecture_params
from anime_core.errors import UsageError
from anime_core.specs import ModelSpec

FieldKind = Literal["choice", "int", "float", "bool", "file", "text"]


@dataclass(frozen=True)
class Field:
    """One form field: ``name`` is the pipeline option (click's parameter name), ``label`` the flag."""

    name: str
    label: str
    kind: FieldKind
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    count: int = 1  # files expected by a file field (click's nargs)
    help: str = ""

    @property
    def slider(self) -> bool:
        """A float with both bounds reads best as a slider."""
        return self.kind == "float" and self.minimum is not None and self.maximum is not None


def _context() -> click.Context:
    return click.Context(click.Command("anime-ui"))


def _kind(option: click.Option) -> FieldKind:
    kind = option.type
    if option.is_flag or isinstance(kind, click.types.BoolParamType):
        return "bool"
    if isinstance(kind, click.Choice):
        return "choice"
    if isinstance(kind, click.types.IntParamType):  # IntRange too
        return "int"
    if isinstance(kind, click.types.FloatParamType):  # FloatRange too
        return "float"
    if isinstance(kind, (click.Path, click.File)):
        return "file"
    return "text"


def _default(option: click.Option) -> Any:
    try:
        value = option.get_default(_context(), call=True)
    except Exception:  # a default that needs a real command line: show the field empty
        return None
    if isinstance(value, (tuple, list, Path)):
        return None  # file defaults are not uploads; the form starts empty
    return value


def field_of(option: click.Option) -> Field:
    """The form field for one click option."""
    kind = _kind(option)
    bounds = option.type if isinstance(option.type, (click.IntRange, click.FloatRange)) else None
    return Field(
        name=str(option.name),
        label=max(option.opts, key=len),
        kind=kind,
        default=_default(option),
        choices=tuple(str(c) for c in getattr(option.type, "choices", ())),
        minimum=None if bounds is None else bounds.min,
        maximum=None if bounds is None else bounds.max,
        count=max(1, option.nargs),
        help=option.help or "",
    )


def _chosen(spec: ModelSpec) -> tuple[list[click.Option], set[str]]:
    """``--variant`` (if the model has a choice of network), then the model's own options;
    and the names of the first kind, which are left out unless chosen, as ``anime run`` leaves them out."""
    arch = architecture_params(spec)
    params = [p for p in [*arch, *spec.run_options] if isinstance(p, click.Option) and p.name]
    return params, {str(p.name) for p in arch}


def fields(spec: ModelSpec) -> list[Field]:
    """The fields of every option ``spec`` adds to ``anime run``, in its order."""
    return [field_of(o) for o in _chosen(spec)[0]]


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple)) and not value)


def _upload_paths(value: Any) -> list[str]:
    """A file field's value (a path, an upload object or a list of them) as paths."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [str(getattr(v, "name", v)) for v in items]


def convert(spec: ModelSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Form values (by option name) -> the options ``anime_core.load`` takes, checked by click.

    A blank field means the option was not given (its default applies); a bad value is a
    :class:`UsageError` naming the flag, as on the command line.
    """
    ctx = _context()
    out: dict[str, Any] = {}
    params, optional = _chosen(spec)
    for option in params:
        field = field_of(option)
        value = values.get(field.name)
        if field.kind == "file" and not _blank(value):
            value = _upload_paths(value)
            if field.count == 1:
                value = value[0]
            elif len(value) != field.count:
                raise UsageError(f"{field.label} takes {field.count} files; {len(value)} were given")
        elif field.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)  # number boxes send floats
        if _blank(value):
            value = option.get_default(ctx, call=True)  # as if the flag were left out
        try:
            value = option.process_value(ctx, value)
        except click.BadParameter as exc:  # "Invalid value for '--flag': ..." as on the command line
            raise UsageError(exc.format_message()) from None
        if value is not None or field.name not in optional:
            out[field.name] = value
    return out
