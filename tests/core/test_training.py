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
    assert float(rows[1]["lr_generator"]) < float(rows[0]["lr_generator"])  # the core's schedule is stepped
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    # Accelerate names the folders; each one's train_state.json says its step
    assert [(c.path.name, c.step) for c in checkpoint.checkpoints(run)] == [("checkpoint_0", 2), ("checkpoint_1", 4)]
    # the export is what `anime run --weights` takes
    pipe = anime_core.load("tiny", weights=run / "generator.safetensors", device="cpu")
    assert pipe.generator.body[0].out_channels == 8


@pytest.mark.parametrize(
    ("photos", "run", "factors"),
    [
        # train.max_steps decides the run's length (3 steps an epoch would make train.epochs=2 six steps):
        # full rate for decay_start_epoch/epochs = 1/2 of the 8 steps, then down to 0 at step 8
        (6, ["train.max_steps=8"], [1, 1, 1, 1, 0.75, 0.5, 0.25, 0]),
        # no max_steps: epochs x optimizer steps an epoch, accumulation counted (12 photos, batch 2,
        # grad_accum 2: 3 steps an epoch, 6 in the run; the decay starts at epoch 1 = step 3)
        (12, ["train.grad_accum=2"], [1, 1, 1, 2 / 3, 1 / 3, 0]),
    ],
)
def test_the_core_decays_the_rate_over_the_runs_real_steps(tiny_registry, tmp_path, photos, run, factors):
    """Issue 22 item 3: the LR schedule comes from schedule.* over the steps the run takes; lr at each step."""
    write_images(tmp_path / "photo", photos)
    write_images(tmp_path / "anime", 5, seed=1)
    folders = [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}"]
    out = train("tiny", overrides=[*folders, *run, f"output_dir={tmp_path / 'run'}", "train.epochs=2",
                                   "schedule.decay_start_epoch=1", "optim.lr=1e-3"], progress=False)
    rows = _rows(out)
    assert [int(r["step"]) for r in rows] == list(range(1, len(factors) + 1))
    # the rate each row logs is the one of the next step: the scheduler has stepped once per optimizer step
    assert [float(r["lr_generator"]) for r in rows] == pytest.approx([1e-3 * f for f in factors], abs=1e-12)
    assert {float(r["lr_discriminator"]) for r in rows[:3]} == {1e-3} and float(rows[-1]["lr_discriminator"]) == 0


def test_a_task_that_builds_its_own_schedulers_is_refused(tiny_registry, data, tmp_path, monkeypatch):
    from tiny_anime_plugin.task import TinyTask

    build = TinyTask.build

    def own_schedule(self, steps_per_epoch):
        build(self, steps_per_epoch)
        self.schedulers = {"generator": torch.optim.lr_scheduler.LambdaLR(self.optimizers["generator"], lambda s: 1)}

    monkeypatch.setattr(TinyTask, "build", own_schedule)
    with pytest.raises(UsageError, match="built its own schedulers; the core builds them from the config's schedule"):
        train("tiny", overrides=[*data, f"output_dir={tmp_path / 'run'}", "train.max_steps=1"], progress=False)


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_is_exact(accum, tiny_registry, data, tmp_path):
    """From mid-epoch (3 steps per epoch), also with gradient accumulation (windows of 2 batches of 1).

    The stopped run planned the same 5 steps (the rate decays over the planned steps, so a run resumed
    with a larger train.max_steps follows the new, longer schedule from where it is)."""
    common = [*data, "train.checkpoint_every=2", f"train.grad_accum={accum}", f"train.batch_size={2 // accum}",
              "train.max_steps=5"]
    a = train("tiny", overrides=[*common, f"output_dir={tmp_path / 'a'}"], progress=False)
    with pytest.raises(TrainingError, match="interrupted at step 2"):
        train("tiny", overrides=[*common, f"output_dir={tmp_path / 'b'}", "optim.interrupt_at=3"], progress=False)
    b = train("tiny", overrides=["optim.interrupt_at=0"], resume=tmp_path / "b", progress=False)
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
    """In the application (the CLI), the steps run inside ``reuse_cpu_memory`` (large blocks from the heap); at the
    end glibc's settings come back. A library call of ``train`` leaves the allocator alone."""
    import accelerate.optimizer

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
    lomo = accelerate.optimizer.is_lomo_available
    train("tiny", overrides=[*data, f"output_dir={tmp_path / 'library'}", "train.max_steps=2", "train.device=cpu"],
          progress=False)
    assert calls == [] and set(depth_in_steps) == {0}, "a library call changed the host's allocator"
    assert accelerate.optimizer.is_lomo_available is lomo  # cached during the call only, then restored
    depth_in_steps.clear()
    with speed.application():
        train("tiny", overrides=[*data, f"output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.device=cpu"],
              progress=False)
    assert accelerate.optimizer.is_lomo_available is lomo
    assert depth_in_steps and set(depth_in_steps) == {1} and speed._depth == 0
    assert calls[0] == ("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD)
    assert calls[-3:] == [("mallopt", speed.M_MMAP_THRESHOLD, speed.RESTORE_MMAP_THRESHOLD),
                          ("mallopt", speed.M_TRIM_THRESHOLD, speed.RESTORE_TRIM_THRESHOLD), ("trim", 0)]


def test_accelerate_is_tweaked_for_the_call_only(tiny_registry, data, tmp_path, monkeypatch):
    """Was: train() replaced accelerate.optimizer.is_lomo_available for the whole process, for good."""
    import accelerate.optimizer

    from anime_core.training import loop

    lomo = accelerate.optimizer.is_lomo_available
    log = logging.getLogger("accelerate.accelerator")
    during: list[tuple[bool, bool]] = []
    task_cls = tiny_registry.model("tiny").task_class()
    step = task_cls.step

    def recording_step(self, *args, **kwargs):
        now = accelerate.optimizer.is_lomo_available
        during.append((now is not lomo and hasattr(now, "cache_info"), loop._QUIET_ROTATION in log.filters))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(task_cls, "step", recording_step)
    train("tiny", overrides=[*data, f"output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.device=cpu"],
          progress=False)
    assert during and set(during) == {(True, True)}  # cached and filtered while training
    assert accelerate.optimizer.is_lomo_available is lomo and loop._QUIET_ROTATION not in log.filters

    def failing_step(self, *args, **kwargs):
        raise RuntimeError("a step that fails")

    monkeypatch.setattr(task_cls, "step", failing_step)
    with pytest.raises(Exception, match="a step that fails"):  # a failing call restores too
        train("tiny", overrides=[*data, f"output_dir={tmp_path / 'bad'}", "train.max_steps=2", "train.device=cpu"],
              progress=False)
    assert accelerate.optimizer.is_lomo_available is lomo and loop._QUIET_ROTATION not in log.filters
