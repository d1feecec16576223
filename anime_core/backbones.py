"""Frozen pretrained feature extractors shared by the plugins' perceptual losses.

VGG19 comes from timm (``vgg19.tv_in1k``: torchvision's ImageNet weights, the network the
papers' perceptual losses use). Its weights go through the core's verified cache like any
weights: ``anime weights pull backbone:vgg19`` downloads them, ``anime weights import
backbone:vgg19 FILE`` installs a copy obtained elsewhere. ``pretrained=False`` gives the same
architecture with random weights (tests, or smoke runs with ``loss.vgg_pretrained=false``).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

# torchvision's VGG19 ImageNet weights (timm's vgg19.tv_in1k is the same file, keys features.N.*)
from anime_core.weights.known import VGG19_KEY, VGG19_SOURCE

#: index in ``vgg.features`` of each conv layer's output (before its ReLU)
VGG19_LAYERS = {
    "conv1_1": 0,
    "conv1_2": 2,
    "conv2_1": 5,
    "conv2_2": 7,
    "conv3_1": 10,
    "conv3_2": 12,
    "conv3_3": 14,
    "conv3_4": 16,
    "conv4_1": 19,
    "conv4_2": 21,
    "conv4_3": 23,
    "conv4_4": 25,
    "conv5_1": 28,
    "conv5_2": 30,
    "conv5_3": 32,
    "conv5_4": 34,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 ``features`` up to the deepest requested layer; returns the requested outputs.

    Inputs are images in [-1, 1] (the generators' range); they are mapped to ImageNet
    normalisation inside. ``layers`` name conv outputs before ReLU (``conv4_4`` is AnimeGAN's
    ``conv4_4_no_activation``); a name ending in ``_relu`` takes the output after it.
    """

    def __init__(self, layers: tuple[str, ...] = ("conv4_4",), pretrained: bool = True) -> None:
        super().__init__()
        idx = []
        for name in layers:
            base, relu = (name[:-5], 1) if name.endswith("_relu") else (name, 0)
            if base not in VGG19_LAYERS:
                from anime_core.errors import unknown

                raise unknown("VGG19 layer", name, VGG19_LAYERS)
            idx.append(VGG19_LAYERS[base] + relu)
        self.layers, self.indices = tuple(layers), tuple(idx)
        # Build on the meta device: the 4096-wide classifier (over 100M parameters) is never
        # materialised; only the kept conv layers get real storage.
        with torch.device("meta"):
            vgg = timm.create_model("vgg19.tv_in1k", pretrained=False, num_classes=0)
        self.features = nn.Sequential(*list(vgg.features.children())[: max(idx) + 1]).to_empty(device="cpu")
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
            elif isinstance(m, nn.ReLU):
                m.inplace = False
        if pretrained:
            _load_vgg19(self.features)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VGG19Features:  # always frozen in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        taken: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.indices:
                taken[i] = x
        return [taken[i] for i in self.indices]


def _load_vgg19(features: nn.Sequential) -> None:
    """Load torchvision/timm ``features.N.*`` weights into the kept layers (verified cache)."""
    from anime_core.weights import fetch
    from anime_core.weights.files import load_into, read_state

    state, _ = read_state(fetch(VGG19_KEY, VGG19_SOURCE))
    wanted = set(features.state_dict())
    feats = {k.removeprefix("features."): v for k, v in state.items() if k.removeprefix("features.") in wanted}
    load_into(features, feats, f"VGG19 weights {VGG19_KEY}")

