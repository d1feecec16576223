"""RGB <-> Lab: hand-checked reference colours, scikit-image agreement, round trip, gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from anime_plugin_ae.color import compose, rgb_to_lightness

from anime_core.color import lab_to_rgb, rgb_to_lab


def _pixels(*rgb: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).T.reshape(1, 3, 1, len(rgb))


def test_reference_colours():
    # white is (100, 0, 0) under D65; sRGB red and blue have the published Lab values (Lindbloom);
    # the 6-digit sRGB->XYZ matrix scikit-image also uses leaves errors below 0.01
    lab = rgb_to_lab(_pixels((1, 1, 1), (0, 0, 0), (1, 0, 0), (0, 0, 1)))[0, :, 0].T
    expected = torch.tensor([[100, 0, 0], [0, 0, 0], [53.2408, 80.0925, 67.2032], [32.2970, 79.1875, -107.8602]])
    torch.testing.assert_close(lab, expected, atol=1e-2, rtol=0)


def test_matches_scikit_image_both_ways():
    color = pytest.importorskip("skimage.color", reason="scikit-image is the reference (in the dev extra)")
    rng = np.random.default_rng(0)
    rgb = rng.random((2, 9, 11, 3))
    rgb[0, 0, :4] = [[0, 0, 0], [1, 1, 1], [0.02, 0.5, 0.04045], [0.003, 0.9, 0.1]]  # both companding segments
    got = rgb_to_lab(torch.from_numpy(rgb).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - color.rgb2lab(rgb)).max() < 1e-3
    lab = np.stack([rng.uniform(0, 100, (2, 9, 11)), rng.uniform(-100, 100, (2, 9, 11)),
                    rng.uniform(-100, 100, (2, 9, 11))], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about the negative-Z colours it clips (so do we)
        ref = color.lab2rgb(lab)
    got = lab_to_rgb(torch.from_numpy(lab).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - ref).max() < 1e-3


def test_round_trip_and_network_normalisation():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    lab = rgb_to_lab(rgb)
    torch.testing.assert_close(lab_to_rgb(lab), rgb, atol=1e-4, rtol=0)
    light = rgb_to_lightness(rgb)
    assert light.shape == (2, 1, 8, 8) and light.min() >= -1 and light.max() <= 1
    torch.testing.assert_close(compose(light, lab[:, 1:] / 128), rgb, atol=1e-4, rtol=0)


def test_differentiable_including_black_and_white():
    rgb = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    rgb[..., 0, 0], rgb[..., 0, 1] = 0.0, 1.0
    rgb.requires_grad_(True)
    rgb_to_lab(rgb).square().sum().backward()
    assert torch.isfinite(rgb.grad).all() and rgb.grad.abs().sum() > 0
    lab = torch.tensor([[[[0.0, 50.0]], [[0.0, 20.0]], [[0.0, -30.0]]]], requires_grad=True)
    lab_to_rgb(lab, clip=False).sum().backward()
    assert torch.isfinite(lab.grad).all()
