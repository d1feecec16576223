"""Learning actually happens: short CPU runs on generated "faces" (coloured discs on flat backgrounds)."""

from __future__ import annotations

import csv

import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from torch.utils.data import DataLoader

import anime_core
from anime_core.config import resolve
from anime_core.training.loop import train
from anime_core.training.task import StepContext

SMALL = ["train.image_size=32", "generator.width=8", "discriminator.width=8", "data.num_workers=0"]


def colour_gap(g: torch.nn.Module, real_mean: torch.Tensor) -> float:
    """Mean absolute gap between per-channel means of 64 fixed samples and of the data."""
    g.eval()
    with torch.no_grad():
        y = g(torch.randn(64, 100, generator=torch.Generator().manual_seed(1)))
    g.train()
    return float((y.mean((0, 2, 3)) - real_mean).abs().mean())


@pytest.mark.slow
def test_dcgan_moves_colour_statistics_toward_data(faces):
    """100 BCE steps (lr raised to 2e-3 so it fits a unit test) close most of the colour gap."""
    reg = anime_core.get_registry()
    spec = reg.model("dcgan")
    cfg = resolve(spec, "dcgan", [f"data.anime={faces}", *SMALL, "train.batch_size=16", "optim.lr_g=2e-3",
                                  "optim.lr_d=2e-3", "schedule.decay=none"])
    torch.manual_seed(0)
    task = spec.task_class()(spec, cfg, reg)
    ds = task.dataset()
    task.build(len(ds) // 16)
    acc = Accelerator(cpu=True)
    real_mean = torch.stack([ds[i]["image"] for i in range(len(ds))]).mean((0, 2, 3))
    before = colour_gap(task.nets["generator"], real_mean)
    step, gaps = 0, []
    while step < 100:
        for batch in DataLoader(ds, batch_size=16, shuffle=True, drop_last=True):
            logs = task.step(batch, StepContext(acc, step, 0, 2))
            step += 1
            if step >= 50 and step % 10 == 0:  # GAN statistics oscillate: read them at six points
                gaps.append(colour_gap(task.nets["generator"], real_mean))
            if step == 100:
                break
    print(f"colour gap {before:.3f} -> {[round(g, 3) for g in gaps]}")
    assert before > 0.25  # untrained samples are grey, the data blue/orange
    assert sum(gaps) / len(gaps) < 0.8 * before
    assert min(gaps) < 0.5 * before
    assert set(logs) >= {"d", "g", "d_adv", "g_adv"}


@pytest.mark.slow
def test_conditional_run_through_loop_then_generate_by_class(class_faces, tmp_path):
    run = train("dcgan", config="pixelsake", overrides=[
        f"data.anime={class_faces}", "data.conditional=true", *SMALL, "train.batch_size=4", "train.max_steps=2",
        "train.log_every=1", "train.sample_every=2", "loss.vgg_pretrained=false", "loss.vgg_layers=[conv1_2]",
        "generator.attention=false", "discriminator.num_scales=2", f"output_dir={tmp_path / 'run'}"], progress=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1", "2"] and {"g_vgg", "g_fm", "d_adv"} <= set(rows[0])
    assert (run / "samples" / "step-0000002.png").is_file()
    pipe = anime_core.load("dcgan", weights=run / "generator.safetensors", device="cpu", class_name="orange")
    assert pipe.generator.class_names == ["green", "orange"] and pipe.generator.num_classes == 2
    assert pipe.generate(2, seed=0)[0].size == (32, 32)


def test_wgan_gp_step_logs_penalty(faces):
    reg = anime_core.get_registry()
    spec = reg.model("dcgan")
    cfg = resolve(spec, None, [f"data.anime={faces}", *SMALL, "loss.adversarial=wgan",
                               "discriminator.batch_norm=false", "optim.n_critic=2"])
    task = spec.task_class()(spec, cfg, reg)
    task.build(1)
    batch = {"image": torch.stack([task.dataset()[i]["image"] for i in range(4)])}
    acc = Accelerator(cpu=True)
    g_before = [p.detach().clone() for p in task.nets["generator"].parameters()]
    logs = task.step(batch, StepContext(acc, 1, 0, 1))  # step 1 with n_critic 2: critic only
    assert float(logs["gp"]) > 0
    assert all(torch.equal(a, b) for a, b in zip(g_before, task.nets["generator"].parameters()))
    task.step(batch, StepContext(acc, 2, 0, 1))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, task.nets["generator"].parameters()))
    # the generator step ran with the critic frozen: it left no gradients on it
    assert all(p.grad is None for p in task.nets["discriminator"].parameters())


@pytest.mark.parametrize(("overrides", "penalised"), [
    (["loss.adversarial=wgan", "loss.gp_weight=0"], False),  # plain Wasserstein critic
    (["loss.adversarial=bce"], False),  # loss.gp_weight (10 by default) applies to wgan only
    (["loss.adversarial=hinge", "loss.feature_matching_weight=1", "loss.content_l2_weight=1"], False),
])
def test_gradient_penalty_only_with_wgan_and_weighted_terms_logged(faces, overrides, penalised):
    reg = anime_core.get_registry()
    spec = reg.model("dcgan")
    cfg = resolve(spec, None, [f"data.anime={faces}", *SMALL, "discriminator.batch_norm=false", *overrides])
    task = spec.task_class()(spec, cfg, reg)
    task.build(1)
    batch = {"image": torch.stack([task.dataset()[i]["image"] for i in range(4)])}
    logs = task.step(batch, StepContext(Accelerator(cpu=True), 0, 0, 1))
    assert ("gp" in logs) is penalised
    weighted = {"g_fm", "g_l2"} & set(logs)
    assert weighted == ({"g_fm", "g_l2"} if "loss.content_l2_weight=1" in overrides else set())
    assert all(float(logs[k]) > 0 for k in weighted)


@pytest.mark.slow
def test_sr_training_beats_bicubic_on_held_out_images(sr_faces, tmp_path):
    run = train("pixelsake-sr", overrides=[
        f"data.anime={sr_faces}", "data.num_workers=0", "data.val_fraction=0.25", "train.image_size=32",
        "train.batch_size=4", "train.max_steps=100", "train.log_every=25", "train.sample_every=0",
        "generator.width=16", "generator.num_blocks=2", "discriminator.width=8", "loss.l1_weight=1.0",
        "loss.perceptual_weight=0", "loss.adversarial_weight=1e-3", "optim.lr_g=2e-3", "schedule.decay=none",
        "eval.every=50", "eval.max_images=4", f"output_dir={tmp_path / 'run'}"], progress=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    first, last = float(rows[0]["psnr_val"]), float(rows[-1]["psnr_val"])
    bicubic = float(rows[-1]["psnr_bicubic"])
    assert "d" in rows[-1] and "g_adv" in rows[-1]
    assert abs(first - bicubic) < 0.2  # starts at bicubic (residual over bicubic)
    assert last > bicubic + 0.5
    pipe = anime_core.load("pixelsake-sr", weights=run / "generator.safetensors", device="cpu")
    assert pipe(Image.new("RGB", (8, 8), (10, 20, 30))).size == (32, 32)
