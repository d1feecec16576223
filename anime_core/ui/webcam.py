"""The Webcam tab: the browser's camera, streamed through a translate model live, with frames per second.

Gradio's streaming webcam input (``gr.Image(sources=["webcam"], streaming=True)`` and its
``.stream`` event) sends a frame every :data:`STREAM_EVERY` s; each is scaled to a long side of
:data:`DEFAULT_SIDE` px (the form's "Long side"), goes through the same cached pipeline as the
Photo tab (``anime_core.load``, with the Strength / Keep-colours controls) and comes back as an
image. A stream is one queued job that calls the model again with the newest frame the browser
has sent once the last call returns (Gradio keeps only the latest input), so a slow model shows
fewer frames rather than lagging behind the camera. One stream runs at a time
(``concurrency_limit=1``: a second browser waits until the first stops, or after
:data:`TIME_LIMIT`). The rate shown is stylised frames per second over the last few seconds
(:class:`Rate`).

The default side, 256 px (AnimeGAN's training size), is the largest that stays near 3 fps on a
small CPU: a 256x192 AnimeGAN v2 frame costs 0.36 s of one core of a 2-core Xeon (2.8 fps), a
192 px one 0.23 s (4.4 fps), a 384 px one 0.87 s (1.2 fps) (benchmarks/RESULTS.md, "Webcam");
larger sides are for GPUs. Every frame is checked against the app's pixel limit before it is converted.
:func:`stylise` and :class:`Rate` need no gradio (tests and ``benchmarks/bench_controls.py`` use them).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from anime_core import budget
from anime_core.errors import AnimeError, UsageError

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.ui import actions
    from anime_core.ui.tabs import Settings

#: long side of a stylised frame in px (see the module docstring for the measurement)
DEFAULT_SIDE = 256
MIN_SIDE, MAX_SIDE = 64, 1024
STREAM_EVERY = 0.1  # s between frames the browser sends while the last one is done
RATE_WINDOW = 3.0  # s of finished frames the fps is averaged over
TIME_LIMIT = 3600  # s a stream runs before the browser must press record again


class Rate:
    """Frames per second over the last :data:`RATE_WINDOW` s, and the model's time per frame."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self.done: deque[float] = deque()
        self.compute: deque[float] = deque(maxlen=16)

    def tick(self, seconds: float, now: float | None = None) -> None:
        """One frame finished at ``now`` after ``seconds`` of model time."""
        now = time.monotonic() if now is None else now
        self.done.append(now)
        self.compute.append(seconds)
        while len(self.done) > 2 and now - self.done[0] > self.window:
            self.done.popleft()

    @property
    def fps(self) -> float:
        if len(self.done) < 2:
            return 0.0
        span = self.done[-1] - self.done[0]
        return (len(self.done) - 1) / span if span > 0 else 0.0

    def text(self, side: tuple[int, int]) -> str:
        ms = 1000 * sum(self.compute) / max(len(self.compute), 1)
        rate = f"**{self.fps:.1f} fps**" if self.fps else "**first frame**"
        return f"{rate} · {ms:.0f} ms per frame in the model · {side[0]}x{side[1]} px"


def check_side(value: Any) -> int:
    """The form's long side as an int in [MIN_SIDE, MAX_SIDE], else a one-sentence ``UsageError``."""
    try:
        side = int(float(value))
    except (TypeError, ValueError, OverflowError):
        side = -1
    if not MIN_SIDE <= side <= MAX_SIDE:
        raise UsageError(f"long side must be a whole number from {MIN_SIDE} to {MAX_SIDE} px, not {value!r}")
    return side


def stylise(pipe: Pipeline, frame: np.ndarray, side: int = DEFAULT_SIDE,
            max_pixels: int = budget.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One webcam frame (H, W, 3 or 4, uint8) -> the stylised frame (h, w, 3) uint8 at long side ``side``."""
    from PIL import Image

    from anime_core.inference import io
    from anime_core.inference.pipeline import TranslatePipeline, check_finite

    if not isinstance(pipe, TranslatePipeline):
        raise UsageError(f"'{pipe.spec.name}' generates images from noise; pick a translate model")
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
        raise UsageError(f"a webcam frame must be an RGB image, not an array of shape {frame.shape} ({frame.dtype})")
    h, w = frame.shape[:2]
    budget.check_pixels(w, h, max_pixels, "webcam frame")
    img = io.resize_long_side(Image.fromarray(np.ascontiguousarray(frame[..., :3]), "RGB"), side)
    y = pipe.forward(io.to_tensor(img).unsqueeze(0))[0]
    check_finite(y, "this frame")
    return np.asarray(io.to_image(y))


def frame(pipe: Pipeline, image: np.ndarray | None, side: Any, rate: Rate | None,
          max_pixels: int = budget.DEFAULT_MAX_PIXELS) -> tuple[np.ndarray | None, str, Rate]:
    """What the stream returns for one frame: (stylised frame, the fps line, the session's rate)."""
    rate = rate if isinstance(rate, Rate) else Rate()
    if image is None:
        return None, "Waiting for the camera.", rate
    start = time.perf_counter()
    out = stylise(pipe, image, check_side(side), max_pixels)
    rate.tick(time.perf_counter() - start)
    return out, rate.text((out.shape[1], out.shape[0])), rate


def webcam_tab(settings: Settings, workspace: actions.Workspace | None = None) -> None:
    """The tab: camera and picker on the left, the stylised stream and its fps on the right."""
    import gradio as gr

    from anime_core.ui import actions
    from anime_core.ui.controls import applied, control_inputs, wire
    from anime_core.ui.form import error_text, picker
    from anime_core.ui.options import convert

    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam (press record)",
                           elem_id="webcam-input", height=300)
            p = picker("translate", "webcam", default="animegan")
            keep, strength = control_inputs("webcam")
            side = gr.Slider(MIN_SIDE, MAX_SIDE, value=DEFAULT_SIDE, step=32, elem_id="webcam-side",
                             label=f"Long side in px ({DEFAULT_SIDE} keeps up on a CPU; larger needs a GPU)")
        with gr.Column(scale=3):
            shown = gr.Image(type="numpy", label="Anime, live", interactive=False, elem_id="webcam-result",
                             height=480)
            status = gr.Markdown("Press record under the camera.", elem_id="webcam-fps")
            rate = gr.State(None)

    def go(data: Mapping[Any, Any]) -> list[Any]:
        from anime_core.registry import get_registry

        try:
            weights = p.weights(dict(data))
            spec = get_registry().model(weights.model)
            pipe = actions.pipeline(weights, convert(spec, p.values(dict(data))), data[settings.device],
                                    data[settings.precision])
            pipe = applied(pipe, data[keep], data[strength])
            out, line, state = frame(pipe, data[cam], data[side], data[rate], settings.max_pixels)
        except Exception as exc:  # the stream goes on; the line says why this frame failed
            if not isinstance(exc, AnimeError):
                traceback.print_exc(file=sys.stderr)
            return [gr.update(), error_text(exc), data[rate]]
        return [out if out is not None else gr.update(), line, state]

    wire(p, strength)
    inputs = {cam, side, keep, strength, rate, *p.inputs, *settings.inputs}
    cam.stream(go, inputs, [shown, status, rate], stream_every=STREAM_EVERY, time_limit=TIME_LIMIT,
               concurrency_limit=1, show_progress="hidden")
