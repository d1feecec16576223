"""The names of the files in a training run folder, in one place (``anime train`` writes them; ``anime eval``,
``anime report``, ``anime run RUN_DIR``, the web app's Train tab and the plugins read them).

::

    RUN_DIR/
      config.yaml             CONFIG: the resolved config, written first (what makes a folder a run)
      .lock                   LOCK: held while a process trains in the folder
      metrics.csv             METRICS: one row per logged step
      samples/step-*.png      SAMPLES: sample grids
      report.html, .json      REPORT, REPORT_STATE: the run's report and what it was made from
      train.log               LOG: the output of a run started from the web app
      generator.safetensors   EXPORT: the trained generator, for 'anime run --weights'
      checkpoints/checkpoint_N/
        train_state.json      CHECKPOINT_STATE: written last, the completion marker
        anime_state.safetensors  CHECKPOINT_EXTRA: the task's own state
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from anime_core.errors import UsageError

CONFIG = "config.yaml"
LOCK = ".lock"
METRICS = "metrics.csv"
SAMPLES = "samples"
REPORT = "report.html"
REPORT_STATE = "report.json"
LOG = "train.log"
EXPORT = "generator.safetensors"
CHECKPOINTS = "checkpoints"
CHECKPOINT_STATE = "train_state.json"
CHECKPOINT_EXTRA = "anime_state.safetensors"
MAX_SAME_NAME = 10_000  # runs of one model started in the same second


def new_run_dir(root: str | Path | None, model: str, advice: str = "set output_dir") -> Path:
    """``ROOT/MODEL-DATE-TIME`` (``-2``, ``-3``... when taken), created: how ``anime train`` and the web app name runs.

    ``root`` defaults to ``runs``; ``advice`` ends the error when every suffix is taken.
    """
    root = Path(root or "runs").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    base = f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, MAX_SAME_NAME):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"{root} holds too many runs named {base}-*; {advice}")
