"""The Photo, Video, Generate and Compare tabs: inputs, one button, the result and its download.

Each button calls one function of :mod:`anime_core.ui.actions` with the form's values; errors
become the tab's status line (:func:`anime_core.ui.form.guarded`).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from anime_core.api import default_precision  # auto, or $ANIME_PRECISION
from anime_core.budget import DEFAULT_MAX_PIXELS
from anime_core.ui import actions
from anime_core.ui.controls import control_inputs, wire
from anime_core.ui.form import WEIGHTS_TYPES, Picker, guarded, picker, size_inputs

VIDEO_TYPES = [".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif", ".webp"]


class Settings:
    """Device, precision and the pixel limit, shared by every tab (``anime run --device/--precision/--max-pixels``)."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels  # fixed by ``anime ui --max-pixels``; bounds the Size and Tile fields
        with gr.Row():
            self.device = gr.Dropdown(["auto", "cpu", "cuda", "mps"], value="auto", label="Device", scale=1,
                                      elem_id="device")
            self.precision = gr.Dropdown(["auto", "fp32", "fp16", "bf16"], value=default_precision(),
                                         label="Precision", scale=1, elem_id="precision")

    @property
    def inputs(self) -> set[Any]:
        return {self.device, self.precision}


def _run_kwargs(p: Picker, settings: Settings, data: dict[Any, Any]) -> dict[str, Any]:
    return {
        "weights": p.weights(data),
        "values": p.values(data),
        "device": data[settings.device],
        "precision": data[settings.precision],
    }


def face_inputs(tab: str) -> tuple[Any, Any]:
    """The Faces toggle and Background choice of the Photo and Video tabs (``anime run --faces --background``)."""
    with gr.Row():
        faces = gr.Checkbox(False, label="Faces (align, stylise and paste back every face)", elem_id=f"{tab}-faces")
        background = gr.Dropdown(actions.background_choices(), value="same", allow_custom_value=True,
                                 label="Background with Faces: same, keep (the photo), or a style",
                                 elem_id=f"{tab}-background")
    return faces, background


def photo_tab(settings: Settings, workspace: actions.Workspace) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Photo",
                             elem_id="photo-input", height=260)
            p = picker("translate", "photo", default="animegan")
            size, tile = size_inputs("photo", settings.max_pixels)
            faces, background = face_inputs("photo")
            keep, strength = control_inputs("photo")
            run = gr.Button("Turn into anime", variant="primary", elem_id="photo-run")
        with gr.Column(scale=3):
            slider = gr.ImageSlider(type="filepath", label="Before / after (drag the handle)", elem_id="photo-result",
                                    interactive=False, max_height=640)
            status = gr.Markdown("", elem_id="photo-status")
            download = gr.DownloadButton("Download result", visible=False, elem_id="photo-download")

    def go(data: dict[Any, Any]) -> list[Any]:
        result = actions.translate(
            data[image], size=data[size], tile=data[tile], workspace=workspace, max_pixels=settings.max_pixels,
            faces=data[faces], background=data[background],
            controls={"keep_colors": data[keep], "strength": data[strength]}, **_run_kwargs(p, settings, data)
        )
        out = str(result.files[0])
        before = str(result.shown) if result.shown else out
        return [(before, out), gr.update(value=out, visible=True), result.message]

    wire(p, strength)
    run.click(guarded(go, 3, 2), {image, size, tile, faces, background, keep, strength, *p.inputs, *settings.inputs},
              [slider, download, status])


def video_tab(settings: Settings, workspace: actions.Workspace) -> None:
    missing = actions.video_support()
    if missing:
        gr.Markdown(f"**{missing}**", elem_id="video-missing")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            clip = gr.File(label="Video or animated GIF/WebP", file_types=VIDEO_TYPES, type="filepath",
                           elem_id="video-input")
            p = picker("translate", "video", default="animegan")
            size, tile = size_inputs("video", settings.max_pixels)
            faces, background = face_inputs("video")
            keep, strength = control_inputs("video")
            with gr.Row():
                deflicker = gr.Checkbox(False, label="Deflicker (steadier static areas)", elem_id="video-deflicker")
                crf = gr.Number(18, label="Quality: CRF (0 lossless, 18 default, 63 smallest)", precision=0,
                                minimum=0, maximum=63, elem_id="video-crf")
            run = gr.Button("Convert video", variant="primary", interactive=missing is None, elem_id="video-run")
        with gr.Column(scale=3):
            shown = gr.Video(label="Result", interactive=False, elem_id="video-result")
            status = gr.Markdown("", elem_id="video-status")
            download = gr.DownloadButton("Download video", visible=False, elem_id="video-download")

    def go(data: dict[Any, Any]) -> list[Any]:
        result = actions.video(
            data[clip], size=data[size], tile=data[tile], workspace=workspace, deflicker=data[deflicker],
            crf=data[crf], max_pixels=settings.max_pixels, faces=data[faces], background=data[background],
            controls={"keep_colors": data[keep], "strength": data[strength]}, **_run_kwargs(p, settings, data)
        )
        out = str(result.files[0])
        playable = out.lower().endswith((".mp4", ".webm", ".mov"))
        return [out if playable else None, gr.update(value=out, visible=True), result.message]

    wire(p, strength)
    inputs = {clip, size, tile, deflicker, crf, faces, background, keep, strength, *p.inputs, *settings.inputs}
    run.click(guarded(go, 3, 2), inputs, [shown, download, status])


def generate_tab(settings: Settings, workspace: actions.Workspace) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            p = picker("generate", "generate", default="dcgan")
            with gr.Row():
                num = gr.Number(16, label=f"Count (up to {actions.MAX_COUNT})", precision=0, minimum=1,
                                maximum=actions.MAX_COUNT, elem_id="generate-num")
                seed = gr.Number(0, label="Seed (same seed, same images)", precision=0, elem_id="generate-seed")
            run = gr.Button("Generate", variant="primary", elem_id="generate-run")
        with gr.Column(scale=3):
            shown = gr.Image(type="filepath", label="Samples", interactive=False, elem_id="generate-result")
            status = gr.Markdown("", elem_id="generate-status")
            download = gr.DownloadButton("Download sheet", visible=False, elem_id="generate-download")

    def go(data: dict[Any, Any]) -> list[Any]:
        result = actions.generate(num=data[num], seed=data[seed], workspace=workspace, **_run_kwargs(p, settings, data))
        out = str(result.files[0])
        return [out, gr.update(value=out, visible=True), result.message]

    run.click(guarded(go, 3, 2), {num, seed, *p.inputs, *settings.inputs}, [shown, download, status])


def compare_tab(settings: Settings, workspace: actions.Workspace) -> None:
    from anime_core.registry import get_registry

    translate = actions.model_names("translate")
    keys = sorted(k for k, s in get_registry().styles.items() if s.model in translate)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Photo",
                             elem_id="compare-input", height=260)
            styles = gr.CheckboxGroup(keys, value=keys[:4], label="Styles", elem_id="compare-styles")
            with gr.Row():
                model = gr.Dropdown(translate, value="animegan" if "animegan" in translate else None,
                                    label="Model of foreign weights files (.safetensors name their own)",
                                    elem_id="compare-model")
                files = gr.File(label="Weights files to compare", file_count="multiple", file_types=WEIGHTS_TYPES,
                                type="filepath", elem_id="compare-weights", height=120)
            size = gr.Number(512, label="Size: long side in px (0: own size)", precision=0, minimum=0,
                             maximum=actions.max_side(settings.max_pixels), elem_id="compare-size")
            run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Results", columns=3, height="auto", elem_id="compare-result")
            status = gr.Markdown("", elem_id="compare-status")

    def go(data: dict[Any, Any]) -> list[Any]:
        picks = [actions.Weights(*key.split(":", 1)) for key in data[styles] or []]
        picks += [actions.Weights(actions.recorded_model(f) or data[model], file=f) for f in data[files] or []]
        shown, failed = actions.compare(data[image], picks, data[size], data[settings.device],
                                        data[settings.precision], workspace, settings.max_pixels)
        lines = [f"{len(picks) - len(failed)} of {len(picks)} done."] + [f"- {line}" for line in failed]
        return [[(str(path), label) for path, label in shown], "\n".join(lines)]

    inputs = {image, styles, model, files, size, *settings.inputs}
    run.click(guarded(go, 2, 1), inputs, [gallery, status])
