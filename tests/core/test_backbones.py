"""The shared VGG19 feature extractor: layers, normalisation, frozen, weights through the cache."""

from __future__ import annotations

import hashlib

import pytest
import timm
import torch

from anime_core.backbones import VGG19_KEY, VGG19Features
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.specs import WeightsSource
from anime_core.weights import store


def test_layers_shapes_and_frozen():
    vgg = VGG19Features(("conv1_1_relu", "conv4_4"), pretrained=False)
    a, b = vgg(torch.rand(1, 3, 32, 32) * 2 - 1)
    assert a.shape == (1, 64, 32, 32) and (a >= 0).all()  # after ReLU
    assert b.shape == (1, 512, 4, 4) and (b < 0).any()  # conv4_4 before its ReLU, as AnimeGAN uses
    assert len(vgg.features) == 26 and not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    with pytest.raises(UsageError, match="did you mean 'conv4_4'"):
        VGG19Features(("conv4_5",), pretrained=False)


def test_pretrained_weights_come_from_the_verified_cache(tmp_path, monkeypatch):
    full = timm.create_model("vgg19.tv_in1k", pretrained=False)
    path = tmp_path / "vgg19.pth"
    torch.save(full.state_dict(), path)  # torchvision layout: features.N.weight, pre_logits..., head...
    with pytest.raises(WeightsUnavailable, match=f"anime weights import {VGG19_KEY} FILE"):
        VGG19Features(pretrained=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr("anime_core.backbones.VGG19_SOURCE", WeightsSource("https://x/vgg19.pth", sha256=sha))
    store.import_file(VGG19_KEY, WeightsSource("https://x/vgg19.pth", sha256=sha), path)
    vgg = VGG19Features(("conv4_4",), pretrained=True)
    x = torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = full.features[:26]((x - mean) / std)
    assert torch.allclose(vgg(x * 2 - 1)[0], expected, atol=1e-5)
