"""The autoencoder starts from Keras' Conv2D initialisation (Abbas et al. built it in Keras)."""

from __future__ import annotations

import math

import pytest
import torch
from anime_plugin_ae.generator import build_generator
from torch import nn


@pytest.mark.parametrize("variant", ["lab", "vae"])
def test_glorot_uniform_kernels_and_zero_biases(variant):
    torch.manual_seed(0)
    convs = [m for m in build_generator(variant).modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        limit = math.sqrt(6 / (fan_in + fan_out))
        weight = conv.weight.detach()
        assert weight.abs().max() <= limit and torch.count_nonzero(conv.bias) == 0
        if weight.numel() > 10_000:  # PyTorch's default would give std sqrt(1 / (3 fan_in)), far below for wide layers
            assert float(weight.std()) == pytest.approx(limit / math.sqrt(3), rel=0.05)
