"""The Strength slider and Keep-colours box of the Photo, Video and Webcam tabs (``anime run --strength``,
``--keep-colors``).

The form's values go to :meth:`~anime_core.inference.pipeline.TranslatePipeline.with_controls` on
the cached pipeline (:func:`applied`), so moving the slider never reloads a model. A model with
its own option of that name (``ae``'s ``--strength``) shows its own field instead: the core's is
hidden for it (:func:`wire`) and its value ignored. :func:`applied` needs no gradio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

    from anime_core.inference.pipeline import Pipeline
    from anime_core.ui.form import Picker


def applied(pipe: Pipeline, keep_colors: Any = None, strength: Any = None) -> Pipeline:
    """``pipe`` with the form's controls (``None``: leave as loaded); a bad strength is a ``UsageError``."""
    from anime_core.inference.controls import owned
    from anime_core.inference.pipeline import TranslatePipeline

    if not isinstance(pipe, TranslatePipeline):
        return pipe
    mine = owned(pipe.spec)
    asked = {k: v for k, v in (("keep_colors", keep_colors), ("strength", strength)) if v is not None and k not in mine}
    if "keep_colors" in asked:
        asked["keep_colors"] = bool(asked["keep_colors"])
    return pipe.with_controls(**asked) if asked else pipe


def control_inputs(prefix: str) -> tuple[gr.Checkbox, gr.Slider]:
    """The Keep-colours checkbox and the Strength slider, ids ``PREFIX-keep-colors`` / ``PREFIX-strength``."""
    import gradio as gr

    with gr.Row():
        keep = gr.Checkbox(False, label="Keep the photo's colours (the style's lines and shading only)",
                           elem_id=f"{prefix}-keep-colors")
        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength (0: the photo, 1: the full style)",
                             elem_id=f"{prefix}-strength")
    return keep, strength


def wire(p: Picker, strength: gr.Slider) -> None:
    """Hide the core Strength slider while a model with its own ``strength`` option is picked."""
    import gradio as gr

    from anime_core.inference.controls import owned
    from anime_core.registry import get_registry

    def on_model(model: str | None) -> Any:
        models = get_registry().models
        return gr.update(visible=not (model in models and "strength" in owned(models[model])))

    p.model.change(on_model, [p.model], [strength])
