"""The tiny plugin's nets: a 3-layer local conv net, its discriminator, an 8-d latent generator."""

from __future__ import annotations

import torch
from torch import nn


class TinyGenerator(nn.Module):
    """Receptive-field radius 3, no global norms: tiled and untiled outputs agree away from seams."""

    stride = 2

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 3, 3, padding=1, padding_mode="reflect"),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyDiscriminator(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyGen(nn.Module):
    latent_dim = 8

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(8, width, 4, 1, 0), nn.ReLU(), nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.view(z.size(0), -1, 1, 1))


def legacy_matches(state) -> bool:  # type: ignore[no-untyped-def]
    """The ``tiny.legacy`` layout: TinyGenerator's keys under ``legacy.`` instead of ``body.``."""
    return any(k.startswith("legacy.") for k in state)


def legacy_convert(state):  # type: ignore[no-untyped-def]
    width = int(state["legacy.0.weight"].shape[0])
    return {k.replace("legacy.", "body.", 1): v for k, v in state.items()}, {"width": width}
