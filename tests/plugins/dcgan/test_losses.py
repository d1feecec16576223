"""Loss pieces the dcgan tasks use, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from anime_plugin_dcgan.losses import mean_feature_matching, psnr
from anime_plugin_dcgan.task import linear_decay

from anime_core.losses import gradient_penalty


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
    real = [torch.tensor([[1.0, 2.0], [3.0, 4.0]])]  # mean (2, 3)
    fake = [torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)]  # mean (1, 1)
    loss = mean_feature_matching(real, fake)
    assert float(loss.detach()) == pytest.approx((1 + 2) / 2)
    loss.backward()
    assert fake[0].grad is not None and float(fake[0].grad.abs().sum()) > 0
    # permuting the fake batch does not change it (statistics, not pairs)
    assert float(mean_feature_matching(real, [fake[0].detach().flip(0)])) == pytest.approx(1.5)


def test_psnr_hand_value():
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.full((1, 3, 4, 4), 0.2)  # mse 0.04 on a range of 2 -> 10 log10(4 / 0.04) = 20 dB
    assert float(psnr(pred, target)) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr(pred * 10, target)) == pytest.approx(10 * math.log10(4 / 1.0), abs=1e-4)  # clamped to 1


def test_linear_decay_schedule():
    f = linear_decay(100, 0.5)
    assert [f(0), f(49), f(50), f(75), f(100), f(150)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
