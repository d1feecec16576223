"""Issue 12 item 1: ``anime train --resume`` never unpickles arbitrary objects.

A run directory may come from someone else. Every pickle-format file of a checkpoint is
replaced in turn by one whose ``__reduce__`` would write a marker file; resuming must refuse it
with exit 3 and the marker must never appear.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from anime_core.cli import main
from anime_core.errors import WeightsUnavailable
from anime_core.training.loop import train


class Payload:
    """Unpickling this runs ``exec``: what a hostile checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('payload ran')",)


@pytest.fixture
def good_run(tiny_registry, train_data, tmp_path):
    run = tmp_path / "good"
    train(
        "tiny",
        overrides=[*train_data, f"output_dir={run}", "train.max_steps=2", "train.checkpoint_every=1"],
        progress=False,
    )
    return run


def _poisoned_copies(good_run, tmp_path):
    """One copy of the run per pickle-format file of its last checkpoint (plus an extra custom state file)."""
    ckpt = sorted(p for p in (good_run / "checkpoints").iterdir() if p.is_dir())[-1]
    names = sorted(p.name for p in ckpt.iterdir() if p.suffix in (".bin", ".pkl"))
    assert names, "the checkpoint holds no pickle-format file to attack"
    for name in [*names, "custom_checkpoint_0.pkl"]:
        run = tmp_path / f"poisoned-{name}"
        shutil.copytree(good_run, run)
        marker = tmp_path / f"ran-{name}"
        torch.save({"state": Payload(marker)}, run / "checkpoints" / ckpt.name / name)
        yield name, run, marker


def test_a_tampered_checkpoint_is_refused_and_its_payload_never_runs(good_run, tmp_path):
    tried = 0
    for name, run, marker in _poisoned_copies(good_run, tmp_path):
        with pytest.raises(WeightsUnavailable, match="refusing") as refused:
            train("tiny", overrides=["train.max_steps=3"], resume=run, progress=False)
        assert refused.value.exit_code == 3, name
        assert not marker.exists(), f"unpickling {name} ran the payload"
        tried += 1
    assert tried >= 3  # optimizer states of G and D, the RNG state, the extra custom state


def test_the_cli_exits_3_with_one_sentence(good_run, tmp_path, capsys):
    name, run, marker = next(_poisoned_copies(good_run, tmp_path))
    with pytest.raises(SystemExit) as done:
        main(["train", "tiny", "--resume", str(run), "-q"])
    err = capsys.readouterr().err
    assert done.value.code == 3 and not marker.exists()
    assert "may have been tampered with" in err and name in err and "Traceback" not in err
