"""Cycle/identity losses, the history pool, the learning-rate schedule and the data transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anime_plugin_cyclegan.data import transform
from anime_plugin_cyclegan.losses import CycleLoss, IdentityLoss
from anime_plugin_cyclegan.pool import ImagePool
from helpers import make_image
from PIL import Image

from anime_core.config import resolve, to_dict
from anime_core.errors import ConfigError
from anime_core.ops import linear_decay


def test_cycle_loss_by_hand():
    x = torch.zeros(1, 1, 2, 2)
    rec_x = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])  # |.| mean = 2.5 / 4
    y = torch.ones(1, 1, 2, 2)
    rec_y = torch.full((1, 1, 2, 2), 0.5)  # mean 0.5
    assert CycleLoss()(x, rec_x, y, rec_y).item() == pytest.approx(0.625 + 0.5)
    assert CycleLoss()(x, x, y, y).item() == 0


def test_identity_loss_by_hand():
    x = torch.tensor([[[[0.2, -0.4]]]])
    f_x = torch.tensor([[[[0.0, 0.0]]]])  # (0.2 + 0.4) / 2
    y = torch.tensor([[[[1.0, 1.0]]]])
    g_y = torch.tensor([[[[1.0, -1.0]]]])  # (0 + 2) / 2
    assert IdentityLoss()(x, f_x, y, g_y).item() == pytest.approx(0.3 + 1.0)


def test_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4  # filling: returned as given
    new = torch.arange(100.0, 200.0).view(100, 1, 1, 1)
    out = pool.query(new)
    assert len(pool) == 4 and out.shape == new.shape
    from_history = (out != new).flatten()
    assert 30 < int(from_history.sum()) < 70  # each swapped with probability 1/2
    # a returned old image is one that was stored earlier: the first four or an earlier new one
    for i in torch.nonzero(from_history).flatten().tolist():
        v = float(out[i])
        assert v < 4 or (100 <= v < 100 + i)
    assert torch.equal(ImagePool(0).query(new), new)


def test_pool_state_round_trip_continues_identically():
    torch.manual_seed(1)
    pool = ImagePool(5)
    pool.query(torch.randn(7, 3, 2, 2))
    copy = ImagePool(5)
    copy.load_state_dict(pool.state_dict())
    batch = torch.randn(6, 3, 2, 2)
    rng = torch.get_rng_state()
    a = pool.query(batch)
    torch.set_rng_state(rng)
    b = copy.query(batch)
    assert torch.equal(a, b) and all(torch.equal(p, q) for p, q in zip(pool.images, copy.images))
    empty = ImagePool(5)
    empty.load_state_dict(ImagePool(5).state_dict())
    assert len(empty) == 0


def cyclegan_task(registry, *overrides: str, steps_per_epoch: int = 3):
    from anime_plugin_cyclegan.task import CycleGANTask

    tiny = ["generator.arch=resnet", "generator.width=4", "generator.n_blocks=1", "discriminator.width=4",
            "train.image_size=32"]
    cfg = resolve(registry.model("cyclegan"), None, [*tiny, *overrides])
    task = CycleGANTask(registry.model("cyclegan"), cfg, registry)
    task.build(steps_per_epoch)
    return task


@pytest.mark.parametrize(("epoch", "lr"), [(0, 2e-4), (140, 2e-4), (195, 1e-4), (250, 0.0)])
def test_learning_rate_at_epochs(registry, epoch, lr):
    """Sharma & Das, section 4.2: 2e-4 for 140 of 250 epochs, then linear decay to 0 (both optimizers)."""
    steps_per_epoch = 3
    task = cyclegan_task(registry, steps_per_epoch=steps_per_epoch)
    assert task.schedulers == {}  # the task builds none: the loop asks the core for them
    task.schedule(250 * steps_per_epoch)  # what the loop passes: Plan.max_steps
    for _ in range(epoch * steps_per_epoch):
        for name, opt in task.optimizers.items():
            opt.step()
            task.schedulers[name].step()
    assert {k: o.param_groups[0]["lr"] for k, o in task.optimizers.items()} == pytest.approx(
        {"generator": lr, "discriminator": lr}, abs=1e-12)


def test_a_max_steps_run_reaches_the_decay(registry):
    """Issue 22: ``anime train cyclegan ... train.max_steps=20000`` decays over its 20,000 steps (140/250 of
    the run at the full rate, then to 0 at the last step), not over 250 epochs it never reaches."""
    from anime_core.training.loop import Plan
    from anime_core.training.schedule import decay_start, lr_schedulers

    cfg = resolve(registry.model("cyclegan"), None, ["train.max_steps=20000"])
    plan = Plan.of(cfg, items=8000, processes=1)  # 1,000 steps an epoch: 250 epochs would be 250,000 steps
    assert (plan.steps_per_epoch, plan.max_steps, decay_start(cfg, plan.max_steps)) == (1000, 20000, 11200)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-4)
    (sched,) = lr_schedulers(cfg, {"generator": opt}, plan.max_steps).values()
    factors = [sched.lr_lambdas[0](s) for s in (0, 11199, 11200, 15600, 20000)]
    assert factors == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0])


def test_schedule_is_linear_within_the_decay_and_its_bounds_are_checked(registry):
    f = linear_decay(250 * 10, 140 * 10)
    assert f(1400) == 1.0 and f(1405) == pytest.approx(1 - 0.5 / 110) and f(9999) == 0.0
    with pytest.raises(ConfigError, match=r"'schedule.decay_start_epoch' \(140\) must be below train.epochs \(100\)"):
        resolve(registry.model("cyclegan"), None, ["train.epochs=100"])
    task = cyclegan_task(registry, "train.epochs=100", "schedule.decay=none", "optim.lr_d=1e-4")
    task.schedule(100 * 3)
    assert task.schedulers == {}  # constant rates, each optimizer its own
    assert {k: o.param_groups[0]["lr"] for k, o in task.optimizers.items()} == {"generator": 2e-4,
                                                                                "discriminator": 1e-4}
    assert all(o.param_groups[0]["betas"] == (0.5, 0.999) for o in task.optimizers.values())


def test_default_config_is_the_papers(registry):
    cfg = resolve(registry.model("cyclegan"))
    assert cfg.train.batch_size == 8 and cfg.train.epochs == 250 and cfg.train.image_size == 256
    plain = to_dict(cfg)
    assert plain["optim"] == {"lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}
    assert plain["schedule"] == {"decay": "linear", "decay_start_epoch": 140}
    assert plain["loss"] == {"adversarial": "lsgan", "cycle_weight": 10.0, "identity_weight": 5.0, "pool_size": 50}
    assert cfg.generator["width"] == cfg.discriminator["width"] == 64 and not hasattr(cfg.data, "kind")
    presets = registry.model("cyclegan").presets
    assert len(presets) == 8
    for name in presets:  # every preset resolves and validates under the new names
        resolve(registry.model("cyclegan"), name)
    both = resolve(registry.model("cyclegan"), "unet-attention-both").generator
    assert both["arch"] == "unet" and both["attention"] == "both"
    r8 = resolve(registry.model("cyclegan"), "resnet8-attention").generator
    assert (r8["arch"], r8["n_blocks"], r8["attention"]) == ("resnet", 8, "blocks")


def anime(*args: str) -> int:
    """``anime ARGS`` in this process: the exit code (errors are printed as the command prints them)."""
    from anime_core.cli import main

    with pytest.raises(SystemExit) as stop:
        main(list(args))
    return int(stop.value.code)


@pytest.mark.parametrize(("override", "message"), [
    ("loss.cycle_weight=-1", "'loss.cycle_weight' must be at least 0.0"),
    ("loss.identity_weight=-0.5", "'loss.identity_weight' must be at least 0.0"),
    ("loss.adversarial=lsgann", "'loss.adversarial' names unknown adversarial loss 'lsgann'; did you mean 'lsgan'"),
    ("loss.pool_size=-1", "'loss.pool_size' must be at least 0"),
    ("optim.lr_d=-1e-4", "'optim.lr_d' must be at least 0.0"),
    ("optim.betas=[0.5]", "'optim.betas' expects a list of 2 values"),
    ("schedule.decay=cosine", "'schedule.decay' must be one of linear, none"),
    ("data.anime_filter=emboss", "'data.anime_filter' must be one of none, sharpen, smooth, blur"),
    ("data.color_jitter=[0.1,0.1]", "'data.color_jitter' expects a list of 4 values"),
    ("data.load_size=128", "'data.load_size' \\(128\\) must be at least train.image_size \\(256\\)"),
])
def test_a_bad_value_is_a_config_error_naming_the_key(registry, override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(registry.model("cyclegan"), None, [override])


def test_the_unet_needs_256_pixel_crops(registry, tmp_path, capsys):
    """A U-Net crop below 256 px used to fail at the first step with a torch error (issue 17, item 4)."""
    spec = registry.model("cyclegan")
    with pytest.raises(ConfigError, match="^the U-Net needs train.image_size >= 256; use --config resnet9 for "
                                          "smaller images$"):
        resolve(spec, None, ["train.image_size=128"])
    assert anime("train", "cyclegan", "train.image_size=64", f"output_dir={tmp_path / 'run'}") == 2
    assert "error: the U-Net needs train.image_size >= 256" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before a run folder was made
    with pytest.raises(ConfigError, match="U-Net needs train.image_size >= 256"):
        resolve(spec, "unet-attention-both", ["train.image_size=128"])
    with pytest.raises(ConfigError, match="multiple of 256, not 384"):
        resolve(spec, None, ["train.image_size=384"])
    assert resolve(spec, "resnet9", ["train.image_size=128"]).train.image_size == 128  # the way out works
    assert resolve(spec, None, ["train.image_size=512"]).train.image_size == 512
    with pytest.raises(ConfigError, match="ResNet generator needs train.image_size to be a multiple of 4, not 30"):
        resolve(spec, "resnet9", ["train.image_size=30"])


def test_transform_lanczos_resize_crop_and_range():
    torch.manual_seed(0)
    img = make_image((60, 40), 3)
    out = transform(32, color_jitter=(0, 0, 0, 0))(img)
    assert out.shape == (3, 32, 32) and out.min() >= -1 and out.max() <= 1
    # short side 40 -> 32 with LANCZOS; width 60 -> 48; the crop is a 32-wide window of it
    resized = torch.from_numpy(np.array(img.resize((48, 32), Image.Resampling.LANCZOS))).permute(2, 0, 1)
    resized = resized.float() / 127.5 - 1
    windows = [resized[:, :, i:i + 32] for i in range(17)]
    assert any(torch.allclose(out, w, atol=1e-5) or torch.allclose(out, w.flip(-1), atol=1e-5) for w in windows)
    plain, blurred = (transform(32, color_jitter=(0, 0, 0, 0), pil_filter=f)(make_image((32, 32), 1))
                      for f in ("none", "blur"))
    assert blurred.std() < plain.std()  # the PIL filter for style images (Sharma & Das, section 3.2) really ran
    with pytest.raises(ConfigError, match="anime_filter"):
        transform(32, pil_filter="emboss")
