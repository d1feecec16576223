"""Gradio pieces every tab shares: the model/style/weights picker, option fields, error handling.

A :class:`Picker` is filled from the registry: the models of one kind, their styles, a weights
upload, the weights' cache state with a download button, and one group of fields per model built
from ``ModelSpec.run_options`` (:mod:`anime_core.ui.options`), shown when that model is picked.
A plugin's model therefore appears with its own options and no UI code. Imported only by
:mod:`anime_core.ui.app`, after gradio is known to be installed.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from anime_core.errors import AnimeError
from anime_core.ui import actions
from anime_core.ui.options import Field, fields

WEIGHTS_TYPES = [".safetensors", ".pt", ".pth", ".ckpt", ".bin"]


def error_text(exc: BaseException) -> str:
    """The status line for a failed action: the error's own sentence."""
    if isinstance(exc, AnimeError):
        return f"**Error:** {exc}"
    return f"**Error:** unexpected {type(exc).__name__}: {exc} (the terminal running `anime ui` has the traceback)"


def guarded(fn: Callable[[dict[Any, Any]], list[Any]], outputs: int, status: int) -> Callable[..., Any]:
    """Wrap a callback taking the form as a dict: an error goes to output ``status``, the others stay as they are.

    The status line keeps the message (an offline error's ``anime weights import`` command can be
    copied from it); a toast would vanish. Progress bars of tqdm (downloads, frames) are shown.
    """

    def call(data: dict[Any, Any], progress: Any = gr.Progress(track_tqdm=True)) -> list[Any]:  # noqa: B008
        try:
            return fn(data)
        except Exception as exc:  # every failure becomes the status line, never a lost page
            if not isinstance(exc, AnimeError):
                traceback.print_exc(file=sys.stderr)
            out: list[Any] = [gr.update() for _ in range(outputs)]
            out[status] = error_text(exc)
            return out

    return call


def option_component(f: Field) -> gr.components.Component:
    """The input for one of a model's own options."""
    label, info = f.label.lstrip("-").replace("-", " "), f.help or None
    if f.kind == "choice" and f.default is None:  # --variant/--arch: blank lets the weights file decide
        choices = [("what the weights record", ""), *((c, c) for c in f.choices)]
        return gr.Dropdown(choices, value="", label=label, info=info)
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=f.default, label=label, info=info)
    if f.kind == "bool":
        return gr.Checkbox(value=bool(f.default), label=label, info=info)
    if f.slider:
        assert f.minimum is not None and f.maximum is not None
        step = (f.maximum - f.minimum) / 100
        value = f.minimum if f.default is None else f.default
        return gr.Slider(f.minimum, f.maximum, value=value, step=step, label=label, info=info)
    if f.kind in ("int", "float") and f.default is None:
        # an empty number box sends 0, which may be a real value: a text box stays "not given" (click converts it)
        return gr.Textbox("", label=label, info=info, placeholder="not set")
    if f.kind in ("int", "float"):
        return gr.Number(
            value=f.default, precision=0 if f.kind == "int" else None, minimum=f.minimum, maximum=f.maximum,
            label=label, info=info,
        )
    if f.kind == "file":
        many = f.count > 1
        return gr.File(
            label=f"{label} ({f.count} files)" if many else label, file_count="multiple" if many else "single",
            type="filepath",
        )
    return gr.Textbox(value="" if f.default is None else str(f.default), label=label, info=info)


@dataclass
class Picker:
    """Model, style, weights file and the picked model's own options."""

    model: gr.Dropdown
    style: gr.Dropdown
    file: gr.File
    note: gr.Markdown
    pull: gr.Button
    groups: dict[str, gr.Group] = field(default_factory=dict)
    options: dict[str, list[tuple[Field, gr.components.Component]]] = field(default_factory=dict)

    @property
    def inputs(self) -> set[gr.components.Component]:
        comps = {self.model, self.style, self.file}
        for pairs in self.options.values():
            comps.update(c for _, c in pairs)
        return comps

    def weights(self, data: dict[Any, Any]) -> actions.Weights:
        return actions.Weights(data[self.model], data[self.style] or None, data[self.file] or None)

    def values(self, data: dict[Any, Any]) -> dict[str, Any]:
        """The picked model's option values by option name."""
        return {f.name: data[c] for f, c in self.options.get(data[self.model], [])}


def picker(kind: str, prefix: str, default: str | None = None) -> Picker:
    """Build a :class:`Picker` for the models of ``kind`` and wire its events."""
    from anime_core.registry import get_registry

    models = actions.model_names(kind)
    first = default if default in models else (models[0] if models else None)
    styles = actions.style_names(first)
    style0 = actions.default_style(first)
    note0, pullable = actions.weights_note(first, style0)
    with gr.Row():
        model = gr.Dropdown(models, value=first, label="Model", elem_id=f"{prefix}-model")
        style = gr.Dropdown(styles, value=style0, label="Style", visible=bool(styles), elem_id=f"{prefix}-style")
    p = Picker(
        model=model,
        style=style,
        file=gr.File(
            label="Weights file instead of a style (.safetensors from training, or a foreign .pt/.pth)",
            file_types=WEIGHTS_TYPES, type="filepath", elem_id=f"{prefix}-weights", height=140,
        ),
        note=gr.Markdown(note0, elem_id=f"{prefix}-note"),
        pull=gr.Button("Download weights", visible=pullable, size="sm", elem_id=f"{prefix}-pull"),
    )
    for name in models:
        spec_fields = fields(get_registry().model(name))
        if not spec_fields:
            continue
        with gr.Group(visible=name == first) as group:
            p.options[name] = [(f, option_component(f)) for f in spec_fields]
        p.groups[name] = group

    def on_model(model: str, file: str | None) -> list[Any]:
        names = actions.style_names(model)
        style = actions.default_style(model)
        note, show = actions.weights_note(model, style, file)
        visible = [gr.update(visible=m == model) for m in p.groups]
        return [gr.update(choices=names, value=style, visible=bool(names)), note, gr.update(visible=show), *visible]

    def on_weights(model: str, style: str | None, file: str | None) -> list[Any]:
        try:
            note, show = actions.weights_note(model, style, file)
        except AnimeError as exc:
            return [error_text(exc), gr.update(visible=False)]
        return [note, gr.update(visible=show)]

    def on_pull(model: str, style: str | None, file: str | None, progress: Any = gr.Progress(track_tqdm=True)) -> list[Any]:  # noqa: B008,E501
        try:
            actions.pull_weights(model, style or "")
        except AnimeError as exc:  # offline: the message names the URL and 'anime weights import'
            return [error_text(exc), gr.update(visible=True)]
        return on_weights(model, style, file)

    p.model.change(on_model, [p.model, p.file], [p.style, p.note, p.pull, *p.groups.values()])
    def on_file(model: str, style: str | None, file: str | None) -> list[Any]:
        """A native file names its model: pick it (its styles and options follow)."""
        named = actions.recorded_model(file)
        picked = named if named in models else model
        return [gr.update(value=picked), *on_weights(picked, style, file)]

    p.style.change(on_weights, [p.model, p.style, p.file], [p.note, p.pull])
    p.file.change(on_file, [p.model, p.style, p.file], [p.model, p.note, p.pull])
    p.pull.click(on_pull, [p.model, p.style, p.file], [p.note, p.pull])
    return p


def size_inputs(prefix: str, max_pixels: int) -> tuple[gr.Number, gr.Number]:
    """``--size`` and ``--tile`` as number boxes; 0 is "not set" (an empty number box sends 0).

    Their maximum is the side of a ``max_pixels`` square; the action checks it again (a request can skip the page).
    """
    most = actions.max_side(max_pixels)
    with gr.Row():
        size = gr.Number(0, label="Size: long side in px (0: the style's or the photo's own)", precision=0,
                         minimum=0, maximum=most, elem_id=f"{prefix}-size")
        tile = gr.Number(0, label="Tile in px (0: only huge images are tiled)", precision=0, minimum=0,
                         maximum=most, elem_id=f"{prefix}-tile")
    return size, tile
