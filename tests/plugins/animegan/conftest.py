"""One random-weight VGG19 (conv4_4) shared by the AnimeGAN tests: building it costs seconds of CPU."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vgg_cache():
    from anime_core.backbones import VGG19Features

    return VGG19Features(("conv4_4",), pretrained=False)


@pytest.fixture
def shared_vgg(vgg_cache, monkeypatch):
    """Make every ``VGG19Features(("conv4_4",), pretrained=False)`` in the plugin return the cached one."""
    import anime_core.backbones as backbones

    real = backbones.VGG19Features

    def cached(layers=("conv4_4",), pretrained=True):
        if tuple(layers) == ("conv4_4",) and not pretrained:
            return vgg_cache
        return real(layers, pretrained)

    monkeypatch.setattr(backbones, "VGG19Features", cached)
    return vgg_cache


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on the shared 2-core test machine two threads spin-wait on each other and the
    tiny 32 px convolutions here ran ~10x slower (measured: v1 forward+backward 5 s -> 0.6 s)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
