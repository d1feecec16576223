"""Cycle/identity losses, the history pool, the learning-rate schedule and the data transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anime_plugin_cyclegan.data import transform
from anime_plugin_cyclegan.losses import CycleLoss, IdentityLoss
from anime_plugin_cyclegan.pool import ImagePool
from anime_plugin_cyclegan.schedule import linear_decay
from helpers import make_image
from PIL import Image

from anime_core.config import resolve
from anime_core.errors import ConfigError


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


@pytest.mark.parametrize(("epoch", "lr"), [(0, 2e-4), (140, 2e-4), (195, 1e-4), (250, 0.0)])
def test_learning_rate_at_epochs(epoch, lr):
    steps_per_epoch = 3
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=2e-4, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(250, 140, steps_per_epoch))
    for _ in range(epoch * steps_per_epoch):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(lr, abs=1e-12)


def test_schedule_is_linear_within_the_decay_and_checks_its_bounds():
    f = linear_decay(250, 140, steps_per_epoch=10)
    assert f(1400) == 1.0 and f(1405) == pytest.approx(1 - 0.5 / 110) and f(9999) == 0.0
    with pytest.raises(ConfigError, match="decay_start_epoch"):
        linear_decay(100, 140, 1)


def test_default_config_is_the_papers(registry):
    cfg = resolve(registry.model("cyclegan"))
    assert cfg["train"]["batch_size"] == 8 and cfg["train"]["epochs"] == 250 and cfg["train"]["image_size"] == 256
    assert cfg["optim"] == {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "decay_start_epoch": 140}
    assert cfg["loss"] == {"gan": "lsgan", "lambda_cycle": 10.0, "lambda_identity": 0.5, "pool_size": 50}
    presets = registry.model("cyclegan").presets
    assert len(presets) == 8
    both = resolve(registry.model("cyclegan"), "unet-attention-both")["generator"]
    assert both["arch"] == "unet" and both["attention"] == "both"
    r8 = resolve(registry.model("cyclegan"), "resnet8-attention")["generator"]
    assert (r8["arch"], r8["n_blocks"], r8["attention"]) == ("resnet", 8, "blocks")


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
    assert blurred.std() < plain.std()  # the PIL filter for style images (paper 3.2) really ran
    with pytest.raises(ConfigError, match="anime_filter"):
        transform(32, pil_filter="emboss")
