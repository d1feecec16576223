"""Training of the transformation network with perceptual losses (Johnson et al. 2016, Section 3-4.1).

One step (Section 3, Figure 2): ``y_hat = f_W(x)`` for a batch of photos ``x``; the loss is
``content_weight * l_feat(y_hat, x) + style_weight * sum_j l_style_j(y_hat, y_s) + tv_weight * l_TV(y_hat)``
with frozen VGG features. The paper uses VGG-16 (content at relu2_2, style at relu1_2, relu2_2,
relu3_3, relu4_3); the core ships VGG-19, so the defaults take the same positions in it: the last
ReLU of blocks 1-4 (relu3_4, relu4_4 for the VGG-16 relu3_3, relu4_3). Adam, learning rate 1e-3,
batch 4 of 256x256 crops, 40,000 iterations (Section 4.1). The style image is read from
``data.style`` on the first step (never in ``build``, so the task builds without data).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from anime_core.api import build_part
from anime_core.backbones import VGG19Features
from anime_core.config import get
from anime_core.errors import ConfigError
from anime_core.training import StepContext, TrainingTask
from anime_example_plugin.losses import TotalVariationLoss, gram, style_loss


def load_style_image(path: str, size: int) -> Tensor:
    """The style target as a (1, 3, size', size') tensor in [-1, 1], long side resized to ``size``."""
    from pathlib import Path

    from torchvision.transforms.v2 import functional as TF

    from anime_core.training.data import load_rgb

    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise ConfigError(f"style image {file} does not exist; set data.style=path/to/style.jpg")
    img = load_rgb(file)
    scale = size / max(img.size)
    img = img.resize((max(4, round(img.width * scale)), max(4, round(img.height * scale))))
    return TF.to_dtype(TF.to_image(img), torch.float32, scale=True).unsqueeze(0) * 2 - 1


class FastStyleTask(TrainingTask):
    """Perceptual-loss training of :class:`~anime_example_plugin.generator.TransformNet`."""

    def build(self, steps_per_epoch: int) -> None:
        spec = self.registry.model("faststyle")
        loss = self.config["loss"]
        self.content_layers = tuple(loss["content_layers"])
        self.style_layers = tuple(loss["style_layers"])
        layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        self.nets = {"generator": build_part(spec, "generator", self.registry, **self.config["generator"])}
        self.vgg = VGG19Features(layers, pretrained=bool(loss["vgg_pretrained"]))
        self.index = {name: i for i, name in enumerate(layers)}
        optim = self.config["optim"]
        self.optimizers = {
            "generator": torch.optim.Adam(self.nets["generator"].parameters(), lr=float(optim["lr"]))
        }
        self.tv = TotalVariationLoss()
        self.target_grams: list[Tensor] | None = None

    def _targets(self, device: torch.device) -> list[Tensor]:
        if self.target_grams is None:
            style = get(self.config, "data.style")
            if not style:
                raise ConfigError("faststyle needs a style image: set data.style=path/to/style.jpg")
            image = load_style_image(style, int(self.config["loss"]["style_size"])).to(device)
            with torch.no_grad():
                feats = self.vgg.to(device)(image)
            self.target_grams = [gram(feats[self.index[name]]) for name in self.style_layers]
        return self.target_grams

    def losses(self, photo: Tensor) -> dict[str, Tensor]:
        """The three weighted terms and their sum for one batch (the step's forward pass)."""
        w = self.config["loss"]
        targets = self._targets(photo.device)
        out = self.nets["generator"](photo)
        feats = self.vgg(out)
        with torch.no_grad():
            photo_feats = self.vgg(photo)
        content = sum(
            F.mse_loss(feats[self.index[n]], photo_feats[self.index[n]]) for n in self.content_layers
        )
        style = style_loss([feats[self.index[n]] for n in self.style_layers], targets)
        terms = {
            "content": float(w["content_weight"]) * content,
            "style": float(w["style_weight"]) * style,
            "tv": float(w["tv_weight"]) * self.tv(out),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, float | Tensor]:
        self.vgg.to(ctx.device)
        terms = self.losses(batch["image"])
        ctx.accelerator.backward(terms["total"])
        self.optimizers["generator"].step()
        self.optimizers["generator"].zero_grad()
        return {k: v.detach() for k, v in terms.items()}

    def sample(self, batch: dict[str, Tensor]) -> Tensor:
        with torch.no_grad():
            return torch.cat([batch["image"][:4], self.nets["generator"](batch["image"][:4])])

    def generator_config(self) -> dict[str, Any]:
        return dict(self.config["generator"])
