"""Loss pieces and the learning-rate schedule the dcgan tasks use, against hand computations."""

from __future__ import annotations

import pytest
import torch

import anime_core
from anime_core.config import resolve
from anime_core.errors import ConfigError
from anime_core.losses import gradient_penalty
from anime_core.training.schedule import lr_schedulers


def test_gradient_penalty_of_linear_critic():
    """D(x) = w.x has gradient w everywhere, so GP = weight * (||w|| - 1)^2 whatever the interpolate."""
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake, weight=10.0)
    expected = 10.0 * (float(w.norm()) - 1) ** 2
    assert float(gp) == pytest.approx(expected, rel=1e-5)
    # a multi-scale critic returning a list: the gradients of the scales add up
    w2 = torch.randn(3, 4, 4)
    gp2 = gradient_penalty(lambda x: [(x * w).flatten(1).sum(1), (x * w2).flatten(1).sum(1)], real, fake, 1.0)
    assert float(gp2) == pytest.approx((float((w + w2).norm()) - 1) ** 2, rel=1e-5)
    # unit-norm critic: no penalty
    unit = w / w.norm()
    assert float(gradient_penalty(lambda x: (x * unit).flatten(1).sum(1), real, fake)) == pytest.approx(0, abs=1e-8)


def test_mean_feature_matching_compares_batch_means():
    matching = anime_core.get_registry().loss("mean_feature_matching").builder()()
    real = [torch.tensor([[1.0, 2.0], [3.0, 4.0]])]  # mean (2, 3)
    fake = [torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)]  # mean (1, 1)
    loss = matching(real, fake)
    assert float(loss.detach()) == pytest.approx((1 + 2) / 2)
    loss.backward()
    assert fake[0].grad is not None and float(fake[0].grad.abs().sum()) > 0
    # permuting the fake batch does not change it (statistics, not pairs)
    assert float(matching(real, [fake[0].detach().flip(0)])) == pytest.approx(1.5)


def test_content_l2_is_pixel_mse():
    l2 = anime_core.get_registry().loss("content_l2").builder()()
    assert float(l2(torch.full((2, 3, 4, 4), 0.5), torch.zeros(2, 3, 4, 4))) == pytest.approx(0.25)


def schedule_factors(overrides: list[str], steps_per_epoch: int, steps: list[int]) -> list[float]:
    spec = anime_core.get_registry().model("dcgan")
    cfg = resolve(spec, None, overrides)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    (sched,) = lr_schedulers(cfg, {"g": opt}, cfg.train.epochs * steps_per_epoch).values()
    return [sched.lr_lambdas[0](s) for s in steps]


def test_decay_starts_at_the_epoch_and_reaches_zero_at_the_end():
    """Default: constant for 25 of 50 epochs, then linear to 0 (what the old fraction 0.5 gave)."""
    factors = schedule_factors([], steps_per_epoch=4, steps=[0, 99, 100, 150, 200, 250])
    assert factors == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    assert schedule_factors(["schedule.decay_start_epoch=0", "train.epochs=2"], 10, [0, 5, 10, 20]) == [
        1.0, 0.75, 0.5, 0.0]
    spec = anime_core.get_registry().model("dcgan")
    cfg = resolve(spec, None, ["schedule.decay=none"])
    assert lr_schedulers(cfg, {"g": torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)}, 4) == {}


def test_decay_start_after_the_last_epoch_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'schedule.decay_start_epoch' \(25\) must be below train.epochs \(10\)"):
        schedule_factors(["train.epochs=10"], 4, [0])
