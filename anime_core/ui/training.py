"""The Train tab's engine: ``anime train`` as a subprocess, and what its run folder shows while it runs.

The app starts exactly the command a user would type (``python -m anime_core.cli train MODEL
key=value ...``), so a run started here is an ordinary run: same config checks, same run folder,
resumable from the command line. Stop sends SIGTERM, which the training loop turns into "finish
this step, save a checkpoint, exit"; a second Stop kills the process. The loss plot reads
``metrics.csv`` and the sample view the newest ``samples/step-*.png`` of the run folder.

The web app reads only the runs of one runs folder, fixed when the app starts (``anime ui
--runs DIR``): a run picked or typed in the page must be a real folder directly in it
(:func:`run_folder`), and the files shown from a run must be regular files inside it, never
symlinks (:func:`run_file`), so a page cannot read other folders of the machine.
"""

from __future__ import annotations

import atexit
import io
import math
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from anime_core import config as cfglib
from anime_core import runfiles
from anime_core.budget import DEFAULT_MAX_PIXELS
from anime_core.errors import UsageError
from anime_core.registry import get_registry

if TYPE_CHECKING:
    from PIL import Image

DEFAULT_RUNS = "runs"  # as ``anime train``
#: the settings the form shows, with their labels; anything else goes in the extra key=value box
SETTINGS = {
    "train.max_steps": "max steps (0: train.epochs)",
    "train.batch_size": "batch size",
    "train.image_size": "image size",
    "train.device": "device",
    "train.precision": "precision",
    "train.sample_every": "sample every (steps)",
    "train.checkpoint_every": "checkpoint every (steps)",
    "train.log_every": "log every (steps)",
}
_NOT_PLOTTED = ("step", "epoch")


def defaults(model: str) -> dict[str, Any]:
    """The form's settings for ``model``: its default config's values of :data:`SETTINGS`."""
    cfg = cfglib.resolve(get_registry().model(model))
    return {key: cfglib.lookup(cfg, key) for key in SETTINGS}


def overrides(
    photo: str | None,
    anime: str | None,
    settings: Mapping[str, Any],
    extra: str = "",
    base: Mapping[str, Any] | None = None,
) -> list[str]:
    """``key=value`` arguments for ``anime train``: the folders, the settings, the extra lines.

    A setting left empty, or equal to its value in ``base`` (the model's defaults the form showed),
    is not passed, so a ``--config`` preset's own value for it still applies.
    """
    out = []
    for key, folder in (("data.photo", photo), ("data.anime", anime)):
        if folder and folder.strip():
            path = Path(folder.strip()).expanduser()
            if not path.is_dir():
                raise UsageError(f"{key}: {path} is not a folder on this machine; give the folder of the images")
            out.append(f"{key}={path}")
    for key, value in settings.items():
        if key not in SETTINGS:
            raise UsageError(f"unknown setting '{key}'")
        if value is None or value == "":
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # number boxes send floats
        if base is not None and key in base and (str(base[key]) == str(value) or (base[key] is None and value == 0)):
            continue  # unchanged; an empty number box sends 0 for a setting that is not set (max_steps)
        out.append(f"{key}={value}")
    for line in extra.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            if "=" not in line:
                raise UsageError(f"'{line}' is not a key=value setting (e.g. optim.lr_g=1e-4)")
            out.append(line)
    return out


def list_runs(root: str | Path) -> list[str]:
    """Run folders directly in ``root`` (real folders with a ``config.yaml``, no symlinks), newest first."""
    root = Path(root or DEFAULT_RUNS).expanduser()
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        try:
            if _is_real_dir(p) and _is_regular(p / runfiles.CONFIG):
                runs.append((p.lstat().st_mtime, str(p)))
        except OSError:
            continue
    return [path for _, path in sorted(runs, reverse=True)]


def run_folder(root: str | Path, run: str | Path | None) -> Path:
    """The run ``run`` names (a path or a bare name), refused unless it is a run folder directly in ``root``.

    Whatever a page sends is checked here before anything is read: ``..``, absolute paths elsewhere
    and symlinks (to a run or away from one) are all refused with the same sentence.
    """
    base = Path(root or DEFAULT_RUNS).expanduser().resolve()
    text = str(run or "").strip()
    path = base / Path(text).expanduser()  # an absolute path replaces base
    inside = text not in ("", ".", "..") and path.name not in ("", ".", "..")
    try:
        inside = inside and path.parent.resolve() == base and _is_real_dir(path) and _is_regular(path / runfiles.CONFIG)
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise UsageError(f"'{text}' is not a run folder in {base}; pick a run from the list")
    return base / path.name


def run_file(run_dir: str | Path, name: str) -> Path | None:
    """``run_dir/name`` if it is a regular file inside the run (no symlink on the way), else ``None``."""
    run = Path(run_dir)
    path = run / name
    try:
        parts = [run / Path(name).parents[i] for i in range(len(Path(name).parents) - 1)]
        if any(not _is_real_dir(folder) for folder in parts) or not _is_regular(path):
            return None
        if not path.resolve().is_relative_to(run.resolve()):
            return None
    except (OSError, ValueError):
        return None
    return path


def _is_real_dir(path: Path) -> bool:
    return stat.S_ISDIR(path.lstat().st_mode)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _open_run_file(run_dir: str | Path, name: str) -> BinaryIO | None:
    """Open a file of a run for reading without following a symlink swapped in after the check."""
    path = run_file(run_dir, name)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        return None
    return fh


def model_of_run(run_dir: str | Path) -> str | None:
    """The model a run folder belongs to, from its name (``MODEL-DATE-TIME``), when it names a known one."""
    name = Path(run_dir).name
    known = sorted(get_registry().models, key=len, reverse=True)
    return next((m for m in known if name.startswith(f"{m}-")), None)


def metrics(run_dir: str | Path | None) -> dict[str, list[tuple[float, float]]]:
    """The run's logged losses as ``{name: [(step, value), ...]}`` (steps, epochs and learning rates left out)."""
    from anime_core.training.report import read_metrics

    path = run_file(run_dir, runfiles.METRICS) if run_dir else None
    rows = read_metrics(path) if path else []
    names = dict.fromkeys(k for row in rows for k in row if k not in _NOT_PLOTTED and not k.startswith("lr"))
    series = {name: [(row["step"], row[name]) for row in rows if name in row and math.isfinite(row[name])]
              for name in names}
    return {name: points for name, points in series.items() if points}


def loss_plot(run_dir: str | Path | None) -> tuple[Image.Image | None, str]:
    """The loss curves as an image (the plots of ``report.html``) and a line saying what is shown."""
    from PIL import Image

    from anime_core.training.report import EXTRA, plot_png

    series = metrics(run_dir)
    if not series:
        return None, "Nothing logged yet." if run_dir else ""
    last = max(points[-1][0] for points in series.values())
    try:
        png = plot_png(series, "step", log_y=True)
    except ImportError:  # matplotlib is the report extra: show the numbers instead
        values = ", ".join(f"{name} {points[-1][1]:.4g}" for name, points in series.items())
        return None, f"Step {last:g}: {values}. Plots need matplotlib: `{EXTRA}`."
    return Image.open(io.BytesIO(png)), f"Losses up to step {last:g}."


def latest_sample(run_dir: str | Path | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image | None:
    """The newest sample grid of the run (a copy in memory), if it is a regular PNG file of a sane size."""
    from PIL import Image

    if not run_dir:
        return None
    samples = Path(run_dir) / runfiles.SAMPLES
    try:
        if not _is_real_dir(samples):
            return None
        names = sorted(p.name for p in samples.glob("step-*.png"))
    except OSError:
        return None
    for name in reversed(names[-3:]):  # the newest that reads
        fh = _open_run_file(run_dir, f"samples/{name}")
        if fh is None:
            continue
        try:
            with fh, Image.open(fh) as im:
                if im.width * im.height > max_pixels:
                    return None  # a sample grid is small: this is no sample
                im.load()
                return im.copy()
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # being written, or not a PNG: the one before it
    return None


def read_log(run_dir: str | Path | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a run's ``train.log`` (progress-bar redraws collapsed to the last one)."""
    fh = _open_run_file(run_dir, runfiles.LOG) if run_dir else None
    if fh is None:
        return ""
    with fh:
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64_000))
        text = fh.read(64_000).decode("utf-8", "replace")
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        redraws = [part for part in line.split("\r") if part.strip()]
        if redraws:
            kept.append(redraws[-1])
    return "\n".join(kept[-lines:])


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    run_dir: Path
    stops: int = 0


class TrainJob:
    """One ``anime train`` subprocess at a time, its runs in one runs folder: start, resume, stop, status, log."""

    def __init__(self, root: str | Path = DEFAULT_RUNS) -> None:
        #: the runs folder: new runs are made here and only runs here can be viewed or resumed
        self.root = Path(root or DEFAULT_RUNS).expanduser().resolve()
        self._lock = threading.Lock()
        self._job: _Process | None = None
        atexit.register(self.shutdown)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.proc.poll() is None

    @property
    def run_dir(self) -> Path | None:
        return self._job.run_dir if self._job else None

    def runs(self) -> list[str]:
        """The runs of the runs folder, newest first."""
        return list_runs(self.root)

    def start(self, model: str, args: list[str], preset: str | None = None) -> Path:
        """A new run of ``model`` in the runs folder with ``key=value`` ``args``; the config is checked first."""
        spec = get_registry().model(model)
        if spec.task is None:
            raise UsageError(f"model '{model}' has no training task")
        cfglib.resolve(spec, preset or None, args)  # a bad key or value fails now, with the CLI's message
        with self._lock:
            self._check_idle()
            run_dir = runfiles.new_run_dir(self.root, model, "choose another runs folder")
            config = ["--config", preset] if preset else []
            self._launch(["train", model, *config, *args, f"output_dir={run_dir}"], run_dir)
        return run_dir

    def resume(self, model: str, run_dir: str | Path, args: Sequence[str] = ()) -> Path:
        """Continue the run ``run_dir`` of the runs folder (``anime train MODEL --resume RUN_DIR``)."""
        get_registry().model(model)
        path = run_folder(self.root, run_dir)
        with self._lock:
            self._check_idle()
            self._launch(["train", model, "--resume", str(path), *args], path)
        return path

    def stop(self) -> str:
        """First call: SIGTERM (checkpoint, then exit). A second call kills the process."""
        with self._lock:
            if not self.running:
                return "No run is going."
            assert self._job is not None
            self._job.stops += 1
            if self._job.stops == 1:
                self._job.proc.send_signal(signal.SIGTERM)
                return "Stopping: the run finishes its step and saves a checkpoint (Stop again to kill it)."
            self._job.proc.kill()
            return "Killed; resume continues from the last saved checkpoint."

    def status(self) -> str:
        """One Markdown line on the current or last run."""
        job = self._job
        if job is None:
            return "No run started yet."
        code = job.proc.poll()
        where = f"`{job.run_dir}`"
        if code is None:
            return f"Running in {where} (PID {job.proc.pid})" + (": stopping..." if job.stops else ".")
        if code == 0:
            return f"Finished: {where}; its weights are `{job.run_dir / runfiles.EXPORT}`."
        last = _last_error(self.log())
        if job.stops:
            return f"Stopped; resume it from {where} with **Resume**." + (f" ({last})" if last else "")
        return f"Ended with exit code {code} in {where}" + (f": {last}" if last else ".")

    def log(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the run's output."""
        return read_log(self._job.run_dir, lines) if self._job else ""

    def shutdown(self) -> None:
        """Ask a running job to checkpoint and stop (the app is closing)."""
        if self.running:
            assert self._job is not None
            self._job.proc.send_signal(signal.SIGTERM)
            try:
                self._job.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._job.proc.kill()

    def _check_idle(self) -> None:
        if self.running:
            raise UsageError("a training run is already going; stop it before starting another")

    def _launch(self, args: list[str], run_dir: Path) -> None:
        log = (run_dir / runfiles.LOG).open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "anime_core.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env,
            )
        finally:
            log.close()  # the child holds its own copy
        self._job = _Process(proc, run_dir)


def _last_error(log: str) -> str:
    for line in reversed(log.splitlines()):
        if line.startswith(("error:", "failed:")):
            return line.removeprefix("error:").strip()
    return ""
