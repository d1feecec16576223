"""Training (Abbas et al., "Ordinary to Anime", II.D, Table III, Fig. 6): learning, per-epoch validation, best."""

from __future__ import annotations

import csv

import pytest
import torch
from accelerate import Accelerator
from anime_plugin_ae.task import BEST_NAME, HISTORY_NAME, AETask
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import anime_core
from anime_core.config import resolve
from anime_core.training.loop import train
from anime_core.training.task import StepContext

TINY = ["generator.widths=[8, 16]", "generator.encoding_filters=16", "generator.latent_channels=4",
        "train.image_size=32", "data.num_workers=0"]


def read_rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_learns_a_recolouring_end_to_end(registry, tmp_path, make_pairs):
    """10 generated pairs (8 train / 2 validation at data.val_fraction 0.2), 25 epochs of one step at 32 px.

    The anime image keeps the photo's lightness and colours it by a fixed map of L*, so the grayscale
    baseline (zero chroma) scores about 20 dB; the trained net must beat it clearly on held-out pairs.
    """
    photo, anime = make_pairs(tmp_path / "data", 10)
    run = train("ae", overrides=[*TINY, f"data.photo={photo}", f"data.anime={anime}", "train.batch_size=8",
                                 "train.epochs=25", "optim.lr_g=0.003", "train.sample_every=0",
                                 f"output_dir={tmp_path / 'run'}"], progress=False)
    rows = read_rows(run / HISTORY_NAME)
    assert [int(r["epoch"]) for r in rows] == list(range(25))
    first, last = rows[0], rows[-1]
    gray = float(last["val_psnr_gray"])
    assert float(last["val_psnr"]) > gray + 3.0, (first, last)
    assert float(last["train_mse"]) < 0.5 * float(first["train_mse"])
    # the best checkpoint is the epoch with the lowest validation MSE
    best = min(rows, key=lambda r: float(r["val_mse"]))
    with safe_open(str(run / BEST_NAME), "pt") as fh:
        meta = fh.metadata()
    assert int(meta["epoch"]) == int(best["epoch"]) and float(meta["val_mse"]) == pytest.approx(float(best["val_mse"]))
    # the loop's CSV carries the per-epoch validation numbers too
    assert any(r.get("val_psnr") for r in read_rows(run / "metrics.csv"))
    pipe = anime_core.load("ae", weights=run / BEST_NAME, device="cpu")
    out = pipe(Image.open(photo / "000.png"))
    assert out.size == (32, 32)


def tiny_task(registry, tmp_path, *overrides):
    cfg = resolve(registry.model("ae"), None, [*TINY, f"output_dir={tmp_path}", *overrides])
    task = AETask(registry.model("ae"), cfg, registry)
    task.build(steps_per_epoch=1)
    return task


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    photo, anime = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    return {"photo": photo, "anime": anime}


def test_best_validation_checkpoint_is_kept(registry, tmp_path):
    torch.manual_seed(0)
    task = tiny_task(registry, tmp_path, "train.epochs=3")
    task.val_set = [None]  # validation is scripted below
    scripted = iter([0.5, 0.2, 0.3])
    task.validate = lambda ctx: {"val_mse": next(scripted), "val_psnr": 0.0, "val_psnr_gray": 0.0}
    acc, states = Accelerator(cpu=True), []
    for step in range(3):
        ctx = StepContext(acc, step, step, 1)
        assert "best_val_mse" not in task.step(batch(step), ctx)  # the step itself never validates
        logs = task.on_epoch_end(step, ctx)
        states.append({k: v.clone() for k, v in task.nets["generator"].state_dict().items()})
        assert logs["best_val_mse"] == min([0.5, 0.2, 0.3][: step + 1])
    assert task.best_epoch == 1
    saved = {k.removeprefix("generator."): v for k, v in load_file(tmp_path / BEST_NAME).items()}
    assert all(torch.equal(saved[k], states[1][k]) for k in states[1])
    assert any(not torch.equal(saved[k], states[2][k]) for k in states[2])
    assert [float(r["best_val_mse"]) for r in read_rows(tmp_path / HISTORY_NAME)] == [0.5, 0.2, 0.2]
    # resume restores the best so far
    fresh = tiny_task(registry, tmp_path / "other")
    fresh.load_state_dict(task.state_dict())
    assert (fresh.best_val, fresh.best_epoch) == (0.2, 1)


def test_epoch_end_reports_the_means_of_its_own_steps(registry, tmp_path):
    task = tiny_task(registry, tmp_path, "train.epochs=2")
    acc, steps = Accelerator(cpu=True), []
    for step in range(5):
        steps.append(task.step(batch(step), StepContext(acc, step, step // 3, 3)))
        if step == 2:
            first = task.on_epoch_end(0, StepContext(acc, step, 0, 3))
    second = task.on_epoch_end(1, StepContext(acc, 4, 1, 3))
    for report, logs in ((first, steps[:3]), (second, steps[3:])):
        assert report["train_mse"] == pytest.approx(sum(float(g["mse"]) for g in logs) / len(logs))
        assert report["train_psnr"] == pytest.approx(sum(float(g["psnr"]) for g in logs) / len(logs))
        assert "val_mse" not in report  # tiny_task has no validation pairs
    rows = read_rows(tmp_path / HISTORY_NAME)
    assert [(int(r["epoch"]), int(r["step"])) for r in rows] == [(0, 3), (1, 5)]


def test_vae_step_adds_the_weighted_kl(registry, tmp_path):
    def params_after_step(weight):
        torch.manual_seed(0)
        task = tiny_task(registry, tmp_path, "generator.variant=vae", f"loss.kl_weight={weight}")
        logs = task.step(batch(), StepContext(Accelerator(cpu=True), 0, 0, 10))
        return logs, torch.cat([p.detach().flatten() for p in task.nets["generator"].parameters()])

    logs, with_kl = params_after_step(1.0)
    assert float(logs["kl"]) > 0 and set(logs) >= {"mse", "psnr", "kl"}
    _, without = params_after_step(0.0)
    assert not torch.equal(with_kl, without)
