"""Issue 12 item 11: one ``anime train`` per run directory; default run names never collide.

(And item 18's last point: resuming another model's run says whose run it is.)
"""

from __future__ import annotations

import signal
from datetime import datetime

import pytest

from anime_core import runfiles
from anime_core.errors import UsageError
from anime_core.training import checkpoint
from anime_core.training.loop import train


@pytest.mark.slow
def test_a_second_train_on_a_busy_run_dir_is_refused_naming_the_holder(
    background_train, tiny_registry, train_data, tmp_path, metric_rows, wait_for
):
    run = tmp_path / "run"
    first = background_train(run, "train.checkpoint_every=5")
    wait_for(lambda: checkpoint.latest(run) is not None, 60, "a checkpoint")
    for kwargs in ({"overrides": [*train_data, f"output_dir={run}"]}, {"resume": run}):
        with pytest.raises(UsageError, match=rf"in use by another 'anime train' \(PID {first.pid}\)"):
            train("tiny", progress=False, **kwargs)
    assert first.poll() is None  # the refused runs left the running one alone
    # a holder that dies, even by SIGKILL (maybe mid-checkpoint), leaves no lock behind
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    last = checkpoint.latest(run).step
    train("tiny", overrides=[f"train.max_steps={last + 1}"], resume=run, progress=False)
    assert int(metric_rows(run)[-1]["step"]) == last + 1


def test_runs_started_in_the_same_second_get_their_own_directories(tiny_registry, train_data, tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return cls(2026, 11, 21, 10, 15, 0)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runfiles, "datetime", Frozen)  # new_run_dir stamps the folder name
    runs = [train("tiny", overrides=[*train_data, "train.max_steps=1"], progress=False) for _ in range(3)]
    assert [str(r) for r in runs] == [
        "runs/tiny-20261121-101500",
        "runs/tiny-20261121-101500-2",
        "runs/tiny-20261121-101500-3",
    ]
    assert all((tmp_path / r / "generator.safetensors").is_file() for r in runs)


def test_resuming_another_models_run_names_that_model(tiny_registry, train_data, tmp_path):
    run = train("tiny", overrides=[*train_data, f"output_dir={tmp_path / 'r'}", "train.max_steps=1"], progress=False)
    with pytest.raises(UsageError, match=f"is a run of 'tiny'; resume it with: anime train tiny --resume {run}"):
        train("tinygen", resume=run, progress=False)
