"""Issue 12 item 13: SIGTERM (what schedulers and cluster managers send) stops a run like Ctrl-C.

The run finishes its optimizer step, writes a checkpoint, says how to continue and exits 1; the
checkpoint resumes.
"""

from __future__ import annotations

import re
import signal

import pytest

from anime_core.training import checkpoint
from anime_core.training.loop import train


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_1(background_train, tiny_registry, tmp_path, metric_rows):
    sig = signal.SIGTERM  # a terminal's Ctrl-C (SIGINT) takes the same path
    run = tmp_path / "run"
    proc = background_train(run)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]
    said = re.search(rf"interrupted at step (\d+) \({sig.name}\); a checkpoint was saved", err)
    assert said and f"--resume {run}" in err and "Traceback" not in err, err[-2000:]
    stopped_at = int(said.group(1))
    assert checkpoint.latest(run).step == stopped_at
    assert [int(r["step"]) for r in metric_rows(run)] == list(range(1, stopped_at + 1))
    train("tiny", overrides=[f"train.max_steps={stopped_at + 2}"], resume=run, progress=False)
    assert [int(r["step"]) for r in metric_rows(run)] == list(range(1, stopped_at + 3))
