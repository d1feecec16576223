"""Scalar logs through Accelerate's trackers: TensorBoard (``<run>/tb``) and ``<run>/metrics.csv``.

``metrics.csv`` is append-only with a stable header: a row is appended and flushed per log call;
only when a new column appears (an epoch-end value, say) is the file rewritten, atomically. A
resumed run first drops the rows past its checkpoint, so no step appears twice; TensorBoard
does the same with ``purge_step``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, on_main_process

from anime_core import runfiles
from anime_core.fsutil import atomic_path

TENSORBOARD = "tb"


def trackers(run_dir: Path, resume_step: int, tensorboard: bool) -> tuple[list[Any], dict[str, Any]]:
    """``log_with`` for the ``Accelerator`` and ``init_kwargs`` for ``init_trackers``."""
    from accelerate.utils import is_tensorboard_available

    log_with: list[Any] = [CsvTracker(run_dir / runfiles.METRICS, resume_step)]
    init_kwargs: dict[str, Any] = {}
    if tensorboard and is_tensorboard_available():
        log_with.append("tensorboard")
        init_kwargs["tensorboard"] = {"purge_step": resume_step + 1} if resume_step else {}
    return log_with, init_kwargs


class CsvTracker(GeneralTracker):
    """An Accelerate tracker writing one CSV row per logged step (main process only)."""

    name = "csv"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, path: Path, resume_step: int = 0) -> None:
        super().__init__()
        self.path, self.resume_step = Path(path), resume_step
        self.header: list[str] = []
        self.started = False

    @property
    def tracker(self) -> Path:
        return self.path

    @on_main_process
    def start(self) -> None:
        """Keep the rows up to the checkpoint a run resumes from (none for a new run)."""
        self.started = True
        header, rows, clean = _read(self.path)
        kept = [r for r in rows if int(r["step"]) <= self.resume_step]
        self.header = header if kept else []
        if kept != rows or not kept or not clean:
            self._rewrite(kept, self.header)

    @on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        if not self.started:  # Accelerate versions that do not call start()
            self.start()
        row = {"step": step, **values}
        new = [k for k in row if k not in self.header]
        if new:
            _, rows, _ = _read(self.path)
            self._rewrite([*rows, row], self.header + new)
            self.header = self.header + new  # only once the file has it
            return
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.header).writerow(row)

    def _rewrite(self, rows: list[dict[str, Any]], header: list[str]) -> None:
        if not header:
            self.path.unlink(missing_ok=True)
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        with atomic_path(self.path) as tmp:
            tmp.write_text(buf.getvalue(), newline="")


def _read(path: Path) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Header, complete rows, and whether the file was clean (a crash mid-append cuts the last row)."""
    if not path.is_file():
        return [], [], True
    with path.open(newline="") as fh:
        text = fh.read()
    clean = text.endswith("\n")
    if not clean:
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [r for r in reader if None not in r and None not in r.values() and r.get("step", "").isdigit()]
    return list(reader.fieldnames or []), rows, clean and len(rows) == reader.line_num - 1
