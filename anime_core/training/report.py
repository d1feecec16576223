"""``<run>/report.html``: one self-contained page a person opens to see how a run is going.

Loss curves per term and the learning rates (from ``metrics.csv``), throughput in steps/s, the
newest sample grid and earlier ones over time, the checkpoints' evaluation when ``anime eval RUN
--all-checkpoints`` has written one, the resolved config and the command to resume. Images are
PNGs embedded as base64, so the file works when copied anywhere and needs no server.

The training loop keeps a :class:`RunReport` for the run: it records the wall-clock time of
logged steps in ``<run>/report.json`` (throughput, across resumed sessions) and rewrites the
page at each sample step (at most every :data:`MIN_INTERVAL` seconds) and when the run ends.
``anime report RUN_DIR`` rebuilds the page from the run folder alone (:func:`write_report`).
Plots need matplotlib (``pip install "anime-core[report]"``); without it the page says so and
shows everything else. Writing the report never stops a run: a failure is logged once.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import itertools
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from anime_core import runfiles
from anime_core.errors import AnimeError, TrainingError
from anime_core.fsutil import atomic_path
from anime_core.text import printable

log = logging.getLogger("anime.train")

EVAL_TABLE = Path("eval") / "checkpoints.csv"
MIN_INTERVAL = 10.0  # seconds between two rewrites during a run (plots take about a second)
MAX_POINTS = 4000  # throughput points kept in report.json; older sessions are thinned beyond that
HISTORY = 6  # earlier sample grids shown besides the newest
EXTRA = 'pip install "anime-core[report]"'
_NOT_LOSSES = {"step", "epoch"}


class RunReport:
    """The report of one training session (main process); a disabled one does nothing."""

    def __init__(self, run_dir: Path, model: str, enabled: bool = True, log_every: int = 10) -> None:
        self.run_dir, self.model, self.enabled = Path(run_dir), model, enabled
        self.every = max(1, int(log_every or 1))
        self.max_steps: int | None = None
        self.step = 0
        self.started = False  # an optimizer step completed in this session
        self._last_write = 0.0
        self._failed = False
        state = _read_state(self.run_dir) if enabled else {}
        self.sessions: list[list[list[float]]] = [*state.get("sessions", []), []]

    def plan(self, max_steps: int, step: int) -> None:
        """The run's length and the step this session starts from."""
        self.max_steps, self.step = max_steps, step

    def tick(self, step: int) -> None:
        """After each optimizer step: keep the time of logged steps for the throughput."""
        self.step, self.started = step, True
        current = self.sessions[-1]
        if self.enabled and (not current or step % self.every == 0):
            current.append([step, round(time.time(), 3)])

    def update(self, status: str = "running", force: bool = False) -> Path | None:
        """Rewrite ``report.html`` (and ``report.json``); skipped within :data:`MIN_INTERVAL` unless ``force``."""
        if not self.enabled or (not force and time.monotonic() - self._last_write < MIN_INTERVAL):
            return None
        try:
            _thin(self.sessions)
            state = {"model": self.model, "status": status, "step": self.step, "max_steps": self.max_steps,
                     "updated": datetime.now().isoformat(timespec="seconds"), "sessions": self.sessions}
            with atomic_path(self.run_dir / runfiles.REPORT_STATE) as tmp:
                tmp.write_text(json.dumps(state))
            path = write_report(self.run_dir)
        except Exception as exc:  # a report must never cost the run
            if not self._failed:
                where, why = printable(self.run_dir / runfiles.REPORT), printable(exc)
                log.warning("could not write %s (%s); the run goes on", where, why)
            self._failed = True
            return None
        self._last_write = time.monotonic()
        return path

    def finish(self, exc: BaseException | None) -> None:
        """The last rewrite, with how the session ended."""
        self.update(ending(exc, self.step), force=True)


def ending(exc: BaseException | None, step: int) -> str:
    """The status line of a session that ended with ``exc`` (None: finished)."""
    if exc is None:
        return f"finished at step {step}"
    if isinstance(exc, (KeyboardInterrupt, TrainingError)):
        return f"stopped at step {step}: {_first_sentence(exc)}"
    if isinstance(exc, AnimeError):
        return f"failed at step {step}: {_first_sentence(exc)}"
    return f"failed at step {step}: {type(exc).__name__}: {_first_sentence(exc)}"


# -- the page ---------------------------------------------------------------------------------------
def write_report(run_dir: str | Path) -> Path:
    """Build ``<run_dir>/report.html`` from the run folder; returns its path."""
    run_dir = Path(run_dir)
    state = _read_state(run_dir)
    model = str(state.get("model") or _model_of(run_dir) or "MODEL")
    rows = read_metrics(run_dir / runfiles.METRICS)
    sessions = state.get("sessions", [])
    plots_ok = _have_matplotlib()
    parts = [_header(run_dir, model, state, rows, sessions)]
    if rows:
        losses = {k: _series(rows, k) for k in _columns(rows) if k not in _NOT_LOSSES and not k.startswith("lr_")}
        lrs = {k: _series(rows, k) for k in _columns(rows) if k.startswith("lr_")}
        speed = {"steps/s": throughput(sessions)}
        parts.append(_section("Losses", _plot_or_note(losses, "step", plots_ok, log_y=True)))
        parts.append(_section("Learning rate and throughput", _plot_or_note({**lrs, **speed}, "step", plots_ok)))
    else:
        parts.append(_section("Losses", "<p>No logged steps yet (<code>metrics.csv</code> is empty).</p>"))
    parts.append(_section("Samples", _samples(run_dir)))
    evaluation = _evaluation(run_dir, plots_ok)
    if evaluation:
        parts.append(_section("Checkpoints evaluated", evaluation))
    parts.append(_section("Config", _config(run_dir)))
    page = _page(f"{model}: {run_dir.name}", "\n".join(parts))
    path = run_dir / runfiles.REPORT
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The complete rows of ``metrics.csv`` as numbers (empty cells left out)."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            if not (raw.get("step") or "").isdigit():
                continue  # a row being written
            row = {}
            for key, value in raw.items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def throughput(sessions: Sequence[Sequence[Sequence[float]]]) -> list[tuple[float, float]]:
    """``(step, steps/s)`` between consecutive recorded steps of each session."""
    out = []
    for points in sessions:
        for (s0, t0), (s1, t1) in itertools.pairwise(points):
            if t1 > t0 and s1 > s0:
                out.append((s1, (s1 - s0) / (t1 - t0)))
    return out


def plot_png(series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, log_y: bool = False) -> bytes:
    """One small line plot per series (matplotlib, Agg), as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n, pts in series.items() if pts]
    cols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(4.2 * cols, 2.8 * nrows))  # a fixed layout: "constrained" doubles the time
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(nrows, cols, squeeze=False).flat)
    for ax, name in zip(axes, names):
        xs, ys = zip(*series[name])
        if len(xs) < 30:
            ax.plot(xs, ys, linewidth=1, marker=".")
        else:  # GAN losses are noisy: the raw values faint, a moving average on top
            ax.plot(xs, ys, linewidth=0.8, alpha=0.35, color="C0")
            ax.plot(xs, _smooth(ys), linewidth=1.4, color="C0")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if log_y and min(ys) > 0 and max(ys) / min(ys) > 100:  # losses spanning decades
            ax.set_yscale("log")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / nrows / 2.8 + 0.04, top=1 - 0.35 / nrows / 2.8,
                        wspace=0.28, hspace=0.55)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _smooth(ys: Sequence[float]) -> list[float]:
    """Exponential moving average spanning about a twentieth of the points (TensorBoard's smoothing)."""
    alpha = min(1.0, 20 / len(ys))
    out, avg = [], ys[0]
    for y in ys:
        avg = alpha * y + (1 - alpha) * avg
        out.append(avg)
    return out


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plot_or_note(series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ok: bool,
                  log_y: bool = False) -> str:
    series = {k: v for k, v in series.items() if v}
    if not series:
        return "<p>Nothing logged yet.</p>"
    if not ok:
        last = ", ".join(f"{html.escape(k)} {v[-1][1]:.4g}" for k, v in series.items())
        return (f"<p>Latest values: {last}.</p><p class=note>Plots need matplotlib: "
                f"<code>{html.escape(EXTRA)}</code>, then <code>anime report RUN_DIR</code>.</p>")
    return _img(plot_png(series, xlabel, log_y), "plots")


def _header(run_dir: Path, model: str, state: Mapping[str, Any], rows: list[dict[str, float]],
            sessions: Sequence[Any]) -> str:
    step = int(rows[-1]["step"]) if rows else int(state.get("step") or 0)
    max_steps = state.get("max_steps")
    status = str(state.get("status") or "unknown (no report.json: rebuilt by anime report)")
    speed = throughput(sessions)
    facts = [("status", status), ("step", f"{step}" + (f" of {max_steps}" if max_steps else ""))]
    if speed:
        rate = speed[-1][1]
        eta = ""
        if max_steps and status == "running" and step < max_steps:
            eta = f", about {_duration((max_steps - step) / rate)} left"
        facts.append(("throughput", f"{rate:.3g} steps/s{eta}"))
    if state.get("updated"):
        facts.append(("updated", str(state["updated"])))
    where = run_dir.absolute()
    cmds = [("resume", f"anime train {model} --resume {where}"),
            ("TensorBoard", f"tensorboard --logdir {where / 'tb'}"),
            ("rebuild this page", f"anime report {where}")]
    export = where / runfiles.EXPORT
    if export.is_file():
        cmds.insert(0, ("use the weights", f"anime run {model} --weights {export} PHOTO -o out/"))
    if any((where / runfiles.CHECKPOINTS).glob("checkpoint_*")):
        cmds.append(("pick a checkpoint", f"anime eval {where} --all-checkpoints --real ANIME_DIR"))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    table += "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in cmds)
    return f"<h1>{html.escape(model)} <small>{html.escape(str(where))}</small></h1><table>{table}</table>"


def _samples(run_dir: Path) -> str:
    grids = sorted((run_dir / runfiles.SAMPLES).glob("step-*.png"))
    if not grids:
        return "<p>No sample grids yet (written every <code>train.sample_every</code> steps).</p>"
    newest = grids[-1]
    earlier = grids[:-1]
    if len(earlier) > HISTORY:  # evenly spaced over the run, the first one included
        earlier = [earlier[round(i * (len(earlier) - 1) / (HISTORY - 1))] for i in range(HISTORY)]
    out = [f"<h3>{_step_of(newest)}</h3>{_thumb(newest, 1400)}"]
    if earlier:
        out.append("<h3>Earlier</h3><div class=history>")
        out += [f"<figure>{_thumb(p, 700)}<figcaption>{_step_of(p)}</figcaption></figure>" for p in reversed(earlier)]
        out.append("</div>")
    return "".join(out)


def _thumb(path: Path, width: int) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.width > width:
                im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except OSError as exc:
        return f"<p>{html.escape(path.name)}: unreadable ({html.escape(str(exc))})</p>"
    return _img(buf.getvalue(), path.name)


def _evaluation(run_dir: Path, plots_ok: bool) -> str:
    path = run_dir / EVAL_TABLE
    if not path.is_file():
        return ""
    with path.open(newline="") as fh:
        table = list(csv.reader(fh))
    if len(table) < 2:
        return ""
    head, body = table[0], table[1:]
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    out = ("<table class=grid><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + f"</tr>{rows}</table>")
    plot = path.with_suffix(".png")
    if plot.is_file():
        out += _img(plot.read_bytes(), "metrics over steps")
    elif not plots_ok:
        out += f"<p class=note>A plot needs matplotlib: <code>{html.escape(EXTRA)}</code>.</p>"
    return out


def _config(run_dir: Path) -> str:
    path = run_dir / runfiles.CONFIG
    text = path.read_text(encoding="utf-8") if path.is_file() else "(no config.yaml)"
    return f"<pre>{html.escape(text)}</pre>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _page(title: str, body: str) -> str:
    style = (
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}"
        "h1 small{font-size:55%;color:#666;font-weight:normal}th{text-align:left;padding-right:1em;"
        "vertical-align:top}table.grid td,table.grid th{border-bottom:1px solid #ddd;padding:2px 8px}"
        "img{max-width:100%}.history{display:flex;flex-wrap:wrap;gap:12px}.history figure{margin:0;"
        "max-width:680px}figcaption,.note{color:#666}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    )
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


# -- small helpers ------------------------------------------------------------------------------------
def _read_state(run_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((run_dir / runfiles.REPORT_STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _model_of(run_dir: Path) -> str | None:
    """The model of a run without ``report.json``: from a checkpoint marker or the exported weights."""
    from anime_core.training import checkpoint

    last = checkpoint.latest(run_dir)
    if last is not None and last.model:
        return last.model
    export = run_dir / runfiles.EXPORT
    if export.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(export), "pt") as fh:
                return (fh.metadata() or {}).get("model")
        except Exception:  # an unreadable export: the page is still useful without the name
            return None
    return None


def _columns(rows: list[dict[str, float]]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _series(rows: list[dict[str, float]], key: str) -> list[tuple[float, float]]:
    return [(row["step"], row[key]) for row in rows if key in row and math.isfinite(row[key])]


def _thin(sessions: list[list[list[float]]]) -> None:
    """Halve the longest session's points until at most :data:`MAX_POINTS` remain in all."""
    while sum(map(len, sessions)) > MAX_POINTS:
        longest = max(sessions, key=len)
        longest[:] = longest[::2]


def _step_of(path: Path) -> str:
    digits = path.stem.removeprefix("step-").lstrip("0")
    return f"step {digits or 0}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
