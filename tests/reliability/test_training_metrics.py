"""Issue 12 item 15: ``metrics.csv`` never loses rows and never repeats a step.

Rows are appended under a stable header; a new column rewrites the file atomically; a resumed
run drops the rows logged after its checkpoint (and a row cut short by a crash) before going on.
"""

from __future__ import annotations

import pytest

from anime_core.errors import TrainingError
from anime_core.training.loop import train
from anime_core.training.tracking import CsvTracker


def test_a_resumed_run_logs_each_step_once(tiny_registry, train_data, tmp_path, metric_rows):
    run = tmp_path / "run"
    overrides = [*train_data, f"output_dir={run}", "train.max_steps=6", "train.checkpoint_every=2"]
    with pytest.raises(TrainingError, match="at step 4"):
        train("tiny", overrides=[*overrides, "optim.explode_at=4"], progress=False)  # logged 1-3, checkpoint at 2
    with (run / "metrics.csv").open("a") as fh:
        fh.write("4,1,0.1")  # and a crash cut the next row short
    train("tiny", overrides=["optim.explode_at=0"], resume=run, progress=False)
    assert [int(r["step"]) for r in metric_rows(run)] == [1, 2, 3, 4, 5, 6]
    assert all(r["g"] and r["lr_generator"] for r in metric_rows(run))


def test_a_new_column_keeps_every_row_and_a_failed_rewrite_keeps_the_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    tracker = CsvTracker(path)
    tracker.start()
    for step in range(1, 1001):
        tracker.log({"epoch": 0, "loss": step / 10}, step=step)
    before = path.read_text()
    assert before.splitlines()[0] == "step,epoch,loss" and len(before.splitlines()) == 1001

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("the machine went down mid-rewrite")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError, match="mid-rewrite"):
        tracker.log({"epoch": 1, "loss": 0.5, "val_psnr": 20.0}, step=1001)  # a new column: rewrite
    assert path.read_text() == before  # all 1000 rows still there
    assert not [p for p in tmp_path.iterdir() if p != path]  # and no temp file
    monkeypatch.undo()

    tracker.log({"epoch": 1, "loss": 0.4}, step=1001)  # the header is still the file's
    tracker = CsvTracker(path, resume_step=1000)  # a resumed run drops step 1001, then logs it again
    tracker.start()
    tracker.log({"epoch": 1, "loss": 0.5, "val_psnr": 20.0}, step=1001)
    lines = path.read_text().splitlines()
    assert lines[0] == "step,epoch,loss,val_psnr" and len(lines) == 1002
    assert lines[1] == "1,0,0.1," and lines[-1] == "1001,1,0.5,20.0"
