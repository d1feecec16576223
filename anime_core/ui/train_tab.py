"""The Train tab: folders and key settings in, ``anime train`` as a subprocess, its run folder shown live.

While a run is going a timer refreshes the status, the loss plot (``metrics.csv``), the newest
sample grid (``samples/``) and the log every :data:`REFRESH_SECONDS`; it switches itself off when
the run ends. The run picker offers the runs of the app's runs folder (``anime ui --runs``) and
refuses anything else typed into it, before reading a file. See :mod:`anime_core.ui.training`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from anime_core.ui import actions, training
from anime_core.ui.form import guarded

REFRESH_SECONDS = 2.0
_NUMBERS = ("train.max_steps", "train.batch_size", "train.image_size", "train.sample_every",
            "train.checkpoint_every", "train.log_every")
_CHOICES = {"train.device": ["auto", "cpu", "cuda"], "train.precision": ["no", "fp16", "bf16"]}


def _presets(model: str | None) -> list[tuple[str, str]]:
    """``--config`` choices: none (the model's defaults) or one of its presets."""
    from anime_core.registry import get_registry

    names = sorted(get_registry().model(model).presets) if model else []
    return [("none: the model's defaults", ""), *((name, name) for name in names)]


def train_tab(job: training.TrainJob) -> None:
    models = actions.model_names(trainable=True)
    first = next((m for m in ("cyclegan", "animegan") if m in models), models[0] if models else None)
    start = training.defaults(first) if first else {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            model = gr.Dropdown(models, value=first, label="Model", elem_id="train-model")
            photo = gr.Textbox(label="Photo folder on this machine (data.photo; translate models)",
                               placeholder="/path/to/photos", elem_id="train-photo")
            anime = gr.Textbox(label="Anime folder on this machine (data.anime)", placeholder="/path/to/anime",
                               elem_id="train-anime")
            preset = gr.Dropdown(_presets(first), value="", label="Preset (--config)", elem_id="train-preset")
            settings: dict[str, Any] = {}
            with gr.Row():
                for key in _NUMBERS:
                    settings[key] = gr.Number(start.get(key) or 0, label=training.SETTINGS[key], precision=0,
                                              minimum=0, min_width=120)
            with gr.Row():
                for key, choices in _CHOICES.items():
                    settings[key] = gr.Dropdown(choices, value=str(start.get(key) or choices[0]),
                                                label=training.SETTINGS[key])
            extra = gr.Textbox(label="More settings, one key=value per line", lines=2,
                               placeholder="optim.lr_g=1e-4", elem_id="train-extra")
            gr.Textbox(str(job.root), label="Runs folder (anime ui --runs)", interactive=False,
                       elem_id="train-root")
            with gr.Row():
                go = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop (saves a checkpoint)", variant="stop", elem_id="train-stop")
            with gr.Row():
                # a typed name works too; anything outside the runs folder is refused (training.run_folder)
                runs = gr.Dropdown(job.runs(), value=None, label="Run to view or resume", allow_custom_value=True,
                                   scale=3, elem_id="train-runs")
                refresh = gr.Button("Refresh list", size="sm", scale=1)
                resume = gr.Button("Resume", scale=1, elem_id="train-resume")
        with gr.Column(scale=3):
            status = gr.Markdown(job.status(), elem_id="train-status")
            # a picture of report.html's plots: Gradio 6's LinePlot keeps the colours of the first series it saw
            plot = gr.Image(label="Losses", interactive=False, elem_id="train-plot", height=300)
            plot_note = gr.Markdown("", elem_id="train-plot-note")
            sample = gr.Image(label="Latest samples", interactive=False, elem_id="train-sample")
            log = gr.Textbox(label="Log", lines=8, max_lines=8, autoscroll=True, elem_id="train-log")
    timer = gr.Timer(REFRESH_SECONDS, active=False)
    live = [status, plot, plot_note, sample, log, timer]

    def refresh_view() -> list[Any]:
        run_dir = job.run_dir
        return [job.status(), *training.loss_plot(run_dir), training.latest_sample(run_dir), job.log(),
                gr.Timer(active=job.running)]

    def show_run(data: dict[Any, Any]) -> list[Any]:
        """A picked run folder's plot, samples and log (the run going now keeps the view while it runs)."""
        if job.running or not data[runs]:
            return refresh_view()
        run_dir = training.run_folder(job.root, data[runs])  # a value typed or forged outside the list: refused
        return [f"Run folder `{run_dir}`: **Resume** continues it.", *training.loss_plot(run_dir),
                training.latest_sample(run_dir), training.read_log(run_dir), gr.Timer(active=False)]

    def on_model(name: str) -> list[Any]:
        values = training.defaults(name)
        shown = [gr.update(value=values.get(k) or (0 if k in _NUMBERS else None)) for k in settings]
        return [gr.update(choices=_presets(name), value=""), *shown]

    def on_start(data: dict[Any, Any]) -> list[Any]:
        values = {k: data[c] for k, c in settings.items()}
        args = training.overrides(data[photo], data[anime], values, data[extra], training.defaults(data[model]))
        job.start(data[model], args, data[preset] or None)
        return refresh_view()

    def on_resume(data: dict[Any, Any]) -> list[Any]:
        name = training.model_of_run(data[runs] or "") or data[model]
        job.resume(name, data[runs])
        return refresh_view()

    def on_stop() -> list[Any]:
        message = job.stop()
        return [message, gr.update(), gr.update(), gr.update(), job.log(), gr.Timer(active=job.running)]

    model.change(on_model, model, [preset, *settings.values()])
    form = {model, photo, anime, preset, extra, *settings.values()}
    go.click(guarded(on_start, len(live), 0), form, live)
    resume.click(guarded(on_resume, len(live), 0), {model, runs}, live)
    stop.click(on_stop, None, live)
    refresh.click(lambda: gr.update(choices=job.runs()), None, runs)
    runs.change(guarded(show_run, len(live), 0), {runs}, live)
    timer.tick(refresh_view, None, live)
