"""Issue 12 item 14: a full disk during a checkpoint or the export is one sentence, exit 1.

The half-written files go, the previous checkpoint stays and resumes. The writers Accelerate
and safetensors use fail here the way they fail on a full device (checked on a real 160 KiB
tmpfs): ``torch.save`` with an opaque C++ "enforce fail" (the file system then has no space
left), Python file writes with ``ENOSPC``, safetensors with the OS message.
"""

from __future__ import annotations

import errno
import os
import shutil

import pytest
import torch
from safetensors import SafetensorError

import anime_core.weights.files
from anime_core.errors import TrainingError
from anime_core.training import checkpoint
from anime_core.training.loop import train


def _fill_after(monkeypatch, module, name: str, calls: int, error: Exception) -> None:
    """``module.name`` writes normally ``calls`` times, then writes part of the file and fails like a full disk."""
    real = getattr(module, name)
    count = {"n": 0}

    def full(obj, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        count["n"] += 1
        if count["n"] <= calls:
            return real(obj, path, *args, **kwargs)
        with open(path, "wb") as fh:
            fh.write(b"\0" * 100)  # what fit before the disk was full
        raise error

    monkeypatch.setattr(module, name, full)


@pytest.mark.parametrize("error", ["enospc", "torch"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
    error, tiny_registry, train_data, tmp_path, monkeypatch, metric_rows
):
    run = tmp_path / "run"
    if error == "torch":  # what torch.save raised on the full tmpfs; the file system then reports no space
        exc: Exception = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        real = shutil.disk_usage
        monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=4096))
    else:
        exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    # a checkpoint makes 3 torch.save calls (the 2 optimizers and the RNG state): the second one fails
    _fill_after(monkeypatch, torch, "save", 3, exc)
    with pytest.raises(TrainingError, match=r"no space left on /\S* while writing \S*checkpoint_1; ") as full:
        train(
            "tiny",
            overrides=[*train_data, f"output_dir={run}", "train.max_steps=6", "train.checkpoint_every=2"],
            progress=False,
        )
    assert full.value.exit_code == 1 and "the checkpoint of step 2 is kept" in str(full.value)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint_0"]  # the partial one is gone
    monkeypatch.undo()  # space freed
    train("tiny", overrides=["train.max_steps=5"], resume=run, progress=False)
    assert [int(r["step"]) for r in metric_rows(run)] == [1, 2, 3, 4, 5]


def test_disk_full_during_the_export_leaves_no_temp_file(tiny_registry, train_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    error = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    _fill_after(monkeypatch, anime_core.weights.files, "save_file", 0, error)
    with pytest.raises(TrainingError, match=r"no space left on /\S* while writing \S*generator.safetensors"):
        train("tiny", overrides=[*train_data, f"output_dir={run}", "train.max_steps=2"], progress=False)
    assert not list(run.glob("*generator.safetensors*"))  # neither the export nor its temp file
    assert checkpoint.latest(run).step == 2  # the final checkpoint was written before the export
