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
