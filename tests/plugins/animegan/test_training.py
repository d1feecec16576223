"""AnimeGAN training (Liu, Chen, Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.3):
the init phase lowers the content loss; both phases run on CPU."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from helpers import write_images

import anime_core
from anime_core import config as cfglib
from anime_core.registry import get_registry
from anime_core.training.task import StepContext


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "photo", 4, size=(40, 36), seed=1)
    write_images(tmp_path / "anime", 3, size=(40, 36), seed=2)
    return tmp_path / "photo", tmp_path / "anime"


def _overrides(photo, anime, *extra):
    return [f"data.photo={photo}", f"data.anime={anime}", "train.image_size=32", "train.batch_size=2",
            "loss.vgg_pretrained=false", "data.num_workers=0", "train.device=cpu", *extra]


def test_init_phase_lowers_content_loss_then_gan_phase_updates_both_nets(folders):
    spec = get_registry().model("animegan")
    cfg = cfglib.resolve(spec, None, _overrides(*folders))
    task = spec.task_class()(spec, cfg, get_registry())
    data = task.dataset()  # prepares the gray/smooth cache on first use, and records where
    assert (Path(cfg.data.prepared_cache) / "smooth").is_dir()
    assert sorted(p.name for p in folders[1].parent.iterdir()) == ["anime", "photo"]  # nothing beside the data
    item = data[0]
    assert set(item) == {"photo", "anime", "anime_gray", "anime_smooth_gray"}
    assert all(v.shape == (3, 32, 32) and v.min() >= -1 and v.max() <= 1 for v in item.values())
    gray = item["anime_gray"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])

    torch.manual_seed(0)
    task.build(steps_per_epoch=10)  # init phase = 1 epoch = 10 steps
    assert task.optimizers["generator_init"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert task.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(8e-5)
    assert task.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(1.6e-4)
    acc = Accelerator(cpu=True)
    batch = torch.utils.data.default_collate([data[0], data[1]])
    d_before = [p.detach().clone() for p in task.nets["discriminator"].parameters()]
    losses = [float(task.step(batch, StepContext(acc, s, 0, 10))["init_content"]) for s in range(10)]
    assert losses[-1] < 0.85 * losses[0], losses  # measured: 0.0283 -> 0.0209
    assert all(torch.equal(a, b) for a, b in zip(d_before, task.nets["discriminator"].parameters()))  # G only

    g_before = [p.detach().clone() for p in task.nets["generator"].parameters()]
    logs = task.step(batch, StepContext(acc, 10, 1, 10))
    assert set(logs) == {"g_adv", "content", "style", "color", "g_loss", "d_loss"}
    assert all(torch.isfinite(v) for v in logs.values())
    assert not all(torch.equal(a, b) for a, b in zip(d_before, task.nets["discriminator"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, task.nets["generator"].parameters()))
    assert all(p.requires_grad for p in task.nets["discriminator"].parameters())


def test_end_to_end_run_through_the_core_loop(folders, tmp_path):
    from anime_core.training.loop import train

    run = train("animegan", overrides=_overrides(
        *folders, f"output_dir={tmp_path / 'run'}", "train.max_steps=3", "train.log_every=1",
        "train.sample_every=0", "train.checkpoint_every=0"), progress=False)
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # 4 photos / batch 2 = 2 steps per epoch: steps 1-2 are the init epoch, step 3 adversarial
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["init_content"] and not rows[0].get("d_loss")
    assert rows[2]["d_loss"] and rows[2]["g_adv"]
    recorded = cfglib.read_yaml(run / "config.yaml")["data"]  # where the copies came from (issue 24 item 5)
    assert recorded["prepared"] is None and (Path(recorded["prepared_cache"]) / "gray").is_dir()
    pipe = anime_core.load("animegan", weights=run / "generator.safetensors", device="cpu")
    from PIL import Image

    assert pipe(Image.new("RGB", (30, 22), (10, 200, 90))).size == (30, 22)


def test_defaults_and_ablation_presets():
    spec = get_registry().model("animegan")
    cfg = cfglib.resolve(spec)
    plain = cfglib.to_dict(cfg)
    assert plain["loss"] == {  # eq. 1, 5, 6
        "adversarial": "lsgan", "adversarial_weight": 300.0, "content_weight": 1.5, "style_weight": 3.0,
        "color_weight": 10.0, "edge_weight": 0.1, "gray_adversarial_weight": 1.0, "vgg_pretrained": True}
    assert plain["optim"] == {"init_lr": 1e-4, "lr_g": 8e-5, "lr_d": 1.6e-4, "betas": [0.5, 0.999]}
    assert plain["discriminator"] == {"width": 64, "n_dis": 3, "spectral": True}
    assert (cfg.train.batch_size, cfg.train.image_size) == (4, 256)
    assert cfg.train.epochs - cfg.train.init_epochs == 100  # 3.3
    changed = {"adv250": ("loss.adversarial_weight", 250.0), "adv350": ("loss.adversarial_weight", 350.0),
               "col50": ("loss.color_weight", 50.0), "no-gray-adv": ("loss.gray_adversarial_weight", 0.0),
               "v2": ("generator.variant", "v2"), "edge-color": ("data.edge_images", "color")}
    assert set(changed) == set(spec.presets)
    keys = {key for key, _ in changed.values()}
    for preset, (key, value) in changed.items():
        resolved = cfglib.resolve(spec, preset)
        assert cfglib.lookup(resolved, key) == value
        # a preset changes its one key and nothing else
        assert [k for k in keys if cfglib.lookup(resolved, k) != cfglib.lookup(cfg, k)] == [key]


def _gan_logs(folders, *extra):
    """Logs of the first adversarial step (init phase off) from a fixed seed."""
    spec = get_registry().model("animegan")
    cfg = cfglib.resolve(spec, None, _overrides(*folders, "train.init_epochs=0", "discriminator.width=8", *extra))
    task = spec.task_class()(spec, cfg, get_registry())
    data = task.dataset()
    torch.manual_seed(0)
    task.build(steps_per_epoch=2)
    batch = torch.utils.data.default_collate([data[0], data[1]])
    return task, task.step(batch, StepContext(Accelerator(cpu=True), 0, 0, 2))


def test_each_weight_key_scales_its_term_and_the_losses_come_from_the_registry(folders):
    from anime_core.losses import HingeLoss, LSGANLoss

    task, base = _gan_logs(folders)
    assert type(task.adv) is LSGANLoss and task.d_loss.adv is task.adv  # loss.adversarial: lsgan, eq. 5 and 6
    assert task.style.extractor is task.content.extractor  # one VGG19 for eq. 2 and eq. 3
    assert (task.d_loss.edge_weight, task.d_loss.gray_weight) == (0.1, 1.0)
    _, doubled = _gan_logs(folders, "loss.content_weight=3.0", "loss.style_weight=6.0", "loss.color_weight=20.0",
                           "loss.adversarial_weight=600.0")
    for term in ("content", "style", "color", "d_loss"):  # computed before any update: exactly twice
        assert float(doubled[term]) == pytest.approx(2 * float(base[term]), rel=1e-6), term
    hinge, logs = _gan_logs(folders, "loss.adversarial=hinge", "loss.gray_adversarial_weight=0.0")
    assert type(hinge.adv) is HingeLoss and hinge.d_loss.adv is hinge.adv and hinge.d_loss.gray_weight == 0.0
    assert float(logs["g_adv"]) != pytest.approx(float(base["g_adv"]))
