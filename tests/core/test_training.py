"""The training loop: run dir, exact resume, NaN stop, Ctrl-C, bad images, accumulation, 2-process DDP."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys

import pytest
import torch
from helpers import subprocess_env, write_images
from safetensors.torch import load_file

import anime_core
from anime_core.errors import ConfigError, TrainingError, UsageError
from anime_core.training import checkpoint
from anime_core.training.loop import train


@pytest.fixture
def data(tmp_path):
    write_images(tmp_path / "photo", 6)
    write_images(tmp_path / "anime", 5, seed=1)
    return [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}"]


def _rows(run):
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_run_dir_holds_config_logs_samples_checkpoints_and_weights(tiny_registry, data, tmp_path):
    run = train(
        "tiny",
        overrides=[
            *data,
            f"output_dir={tmp_path / 'run'}",
            "train.max_steps=4",
            "train.sample_every=2",
            "train.checkpoint_every=2",
        ],
        progress=False,
    )
    cfg = anime_core.config.read_yaml(run / "config.yaml")
    assert cfg["train"]["max_steps"] == 4 and cfg["output_dir"] == str(run)
    rows = _rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0, 1]  # 6 photos / batch 2 = 3 steps per epoch
    assert float(rows[1]["lr_generator"]) < float(rows[0]["lr_generator"])  # the task's scheduler is stepped
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    # Accelerate names the folders; each one's train_state.json says its step
    assert [(c.path.name, c.step) for c in checkpoint.checkpoints(run)] == [("checkpoint_0", 2), ("checkpoint_1", 4)]
    # the export is what `anime run --weights` takes
    pipe = anime_core.load("tiny", weights=run / "generator.safetensors", device="cpu")
    assert pipe.generator.body[0].out_channels == 8


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_is_exact(accum, tiny_registry, data, tmp_path):
    """From mid-epoch (3 steps per epoch), also with gradient accumulation (windows of 2 batches of 1)."""
    common = [*data, "train.checkpoint_every=2", f"train.grad_accum={accum}", f"train.batch_size={2 // accum}"]
    a = train("tiny", overrides=[*common, f"output_dir={tmp_path / 'a'}", "train.max_steps=5"], progress=False)
    b = train("tiny", overrides=[*common, f"output_dir={tmp_path / 'b'}", "train.max_steps=2"], progress=False)
    b = train("tiny", overrides=["train.max_steps=5"], resume=b, progress=False)
    wa, wb = load_file(a / "generator.safetensors"), load_file(b / "generator.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["g"] for r in _rows(a)] == [r["g"] for r in _rows(b)]
    with pytest.raises(UsageError, match="already holds a run; resume it with --resume"):
        train("tiny", overrides=[*data, f"output_dir={a}"], progress=False)


def test_on_epoch_end_runs_once_per_finished_epoch_and_its_values_are_logged(
    tiny_registry, data, tmp_path, monkeypatch
):
    import tiny_anime_plugin

    calls = []

    def on_epoch_end(self, epoch, ctx):  # type: ignore[no-untyped-def]
        calls.append((epoch, ctx.step + 1))
        return {"val": 10.0 + epoch}

    monkeypatch.setattr(tiny_anime_plugin.TinyTask, "on_epoch_end", on_epoch_end)
    run = train(
        "tiny",
        overrides=[
            *data,
            f"output_dir={tmp_path / 'r'}",
            "train.max_steps=4",
            "train.checkpoint_every=4",
            "train.log_every=2",
        ],
        progress=False,
    )
    train("tiny", overrides=["train.max_steps=7"], resume=run, progress=False)
    assert calls == [(0, 3), (1, 6)]  # after steps 3 and 6 (3 steps per epoch), not again on resume; 7 ends no epoch
    rows = {int(r["step"]): r for r in _rows(run)}
    assert sorted(rows) == [2, 3, 4, 6, 7] and rows[3]["val"] == "10.0" and rows[6]["val"] == "11.0"
    assert rows[3]["epoch"] == "0" and rows[4]["epoch"] == "1" and rows[2]["val"] == ""


def test_nan_loss_stops_with_the_step_number(tiny_registry, data, tmp_path):
    with pytest.raises(TrainingError, match="loss 'g' became nan at step 3"):
        train(
            "tiny",
            overrides=[*data, f"output_dir={tmp_path / 'r'}", "train.max_steps=6", "optim.explode_at=3"],
            progress=False,
        )


def test_ctrl_c_saves_a_checkpoint_that_resumes(tiny_registry, data, tmp_path):
    run = tmp_path / "r"
    with pytest.raises(TrainingError, match=f"interrupted at step 2.*--resume {run}"):
        train(
            "tiny", overrides=[*data, f"output_dir={run}", "train.max_steps=6", "optim.interrupt_at=3"], progress=False
        )
    assert checkpoint.latest(run).step == 2 and (run / "generator.safetensors").is_file()
    train("tiny", overrides=["optim.interrupt_at=0"], resume=run, progress=False)
    assert int(_rows(run)[-1]["step"]) == 6


def test_unreadable_images_are_skipped_with_a_warning(tiny_registry, data, tmp_path, caplog):
    (tmp_path / "anime" / "broken.png").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="anime.data"):
        run = train("tiny", overrides=[*data, f"output_dir={tmp_path / 'r'}", "train.max_steps=3"], progress=False)
    assert "skipping 1 unreadable anime images: broken.png" in caplog.text
    assert len(_rows(run)) == 3


def test_gradient_accumulation_counts_optimizer_steps(tiny_registry, data, tmp_path):
    run = train(
        "tiny",
        overrides=[
            *data,
            f"output_dir={tmp_path / 'r'}",
            "train.max_steps=2",
            "train.grad_accum=2",
            "train.batch_size=1",
        ],
        progress=False,
    )
    rows = _rows(run)
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert int(rows[-1]["epoch"]) == 0  # 6 batches of 1 = 3 optimizer steps per epoch


def test_too_little_data_is_a_config_error(tiny_registry, tmp_path):
    write_images(tmp_path / "p", 1)
    write_images(tmp_path / "a", 1)
    with pytest.raises(ConfigError, match="fewer than train.batch_size=2"):
        train(
            "tiny",
            overrides=[f"data.photo={tmp_path / 'p'}", f"data.anime={tmp_path / 'a'}", f"output_dir={tmp_path / 'r'}"],
            progress=False,
        )
    with pytest.raises(ConfigError, match="does not exist"):
        train("tiny", overrides=[f"data.photo={tmp_path / 'nope'}", f"data.anime={tmp_path / 'a'}"], progress=False)


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_generators(tiny_site, data, tmp_path):
    """`accelerate launch -m anime_core.cli train` with 2 gloo processes; every rank dumps its generator."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29541",
        "-m",
        "anime_core.cli",
        "train",
        "tiny",
        *data,
        f"output_dir={tmp_path / 'run'}",
        "train.max_steps=3",
        "train.device=cpu",
        "-q",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=subprocess_env(tiny_site, TINY_DUMP_DIR=str(dumps))
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r0 = torch.load(dumps / "rank0.pt", weights_only=True)
    r1 = torch.load(dumps / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    exported = load_file(tmp_path / "run" / "generator.safetensors")
    assert all(k.startswith("module.") for k in r0)  # really wrapped in DistributedDataParallel
    assert all(torch.equal(exported[f"generator.{k.removeprefix('module.')}"], r0[k]) for k in r0)


def test_cpu_training_steps_reuse_heap_memory_and_restore_the_allocator(tiny_registry, data, tmp_path, monkeypatch):
    """The steps run inside ``reuse_cpu_memory`` (large blocks from the heap); at the end glibc's settings come back."""
    from anime_core.inference import speed

    calls: list[tuple] = []
    depth_in_steps: list[int] = []

    class FakeLibc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append(("mallopt", param, value))
            return 1

        def malloc_trim(self, pad: int) -> int:
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(speed, "_glibc", lambda: FakeLibc())
    task_cls = tiny_registry.model("tiny").task_class()
    step = task_cls.step

    def recording_step(self, *args, **kwargs):
        depth_in_steps.append(speed._depth)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(task_cls, "step", recording_step)
    train("tiny", overrides=[*data, f"output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.device=cpu"],
          progress=False)
    assert depth_in_steps and set(depth_in_steps) == {1} and speed._depth == 0
    assert calls[0] == ("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD)
    assert calls[-3:] == [("mallopt", speed.M_MMAP_THRESHOLD, speed.RESTORE_MMAP_THRESHOLD),
                          ("mallopt", speed.M_TRIM_THRESHOLD, speed.RESTORE_TRIM_THRESHOLD), ("trim", 0)]
