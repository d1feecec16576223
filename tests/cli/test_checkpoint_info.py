"""Issue 24 item 9: a checkpoint's folder number counts saves, so each save prints its step and size, and
``anime info RUN_DIR`` lists every checkpoint with its step, epoch, size and time."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from helpers import write_images

from anime_core.budget import fmt_bytes
from anime_core.cli import cli
from anime_core.training import checkpoint
from anime_core.training.loop import train


@pytest.mark.slow
def test_each_save_names_its_step_and_size_and_info_lists_them(tiny_registry, tmp_path, capsys):
    write_images(tmp_path / "photo", 4, (16, 16))
    write_images(tmp_path / "anime", 4, (16, 16), seed=1)
    run = train("tiny", overrides=[f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}",
                                   f"output_dir={tmp_path / 'r'}", "train.max_steps=5", "train.checkpoint_every=2"],
                progress=False)
    err = capsys.readouterr().err
    saved = re.findall(r"^saved (checkpoint_\d+): step (\d+), (.+) \((.+)\)$", err, re.M)
    assert [(name, step) for name, step, _, _ in saved] == [("checkpoint_0", "2"), ("checkpoint_1", "4"),
                                                             ("checkpoint_2", "5")]
    for name, _, size, where in saved:  # the size of the whole folder, generator export included
        folder = run / "checkpoints" / name
        assert where == str(folder) and (folder / "generator.safetensors").is_file()
        assert size == fmt_bytes(checkpoint.size_on_disk(folder))
    (run / "checkpoints" / "checkpoint_3").mkdir()  # a save that did not finish
    out = CliRunner().invoke(cli, ["info", str(run)])
    assert out.exit_code == 0, out.output
    header, *rows = out.output.splitlines()
    assert header.split() == ["CHECKPOINT", "STEP", "EPOCH", "SIZE", "SAVED"]
    assert [r.split()[:2] for r in rows[:3]] == [["checkpoint_0", "2"], ["checkpoint_1", "4"], ["checkpoint_2", "5"]]
    assert saved[0][2] in rows[0] and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", rows[0])
    assert rows[3].startswith("3 checkpoint(s), ") and rows[4].startswith("1 incomplete folder(s)")


def test_info_on_a_run_without_checkpoints_says_so(tmp_path):
    (tmp_path / "config.yaml").write_text("model: tiny\n")
    out = CliRunner().invoke(cli, ["info", str(tmp_path)])
    assert out.exit_code == 0 and out.output.strip() == f"{tmp_path}: no complete checkpoint yet"
