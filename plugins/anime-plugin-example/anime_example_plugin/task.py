"""Training of the transformation network with perceptual losses (Johnson et al., "Perceptual Losses
for Real-Time Style Transfer and Super-Resolution", Sections 3 and 4.1).

One step (Section 3, Figure 2): ``y_hat = f_W(x)`` for a batch of photos ``x``; the loss is
``content_weight * l_feat(y_hat, x) + style_weight * sum_j l_style_j(y_hat, y_s) + tv_weight * l_TV(y_hat)``
with frozen VGG features. The paper uses VGG-16 (content at relu2_2, style at relu1_2, relu2_2,
relu3_3, relu4_3); the core ships VGG-19, so the defaults take the same positions in it: the last
ReLU of blocks 1-4 (relu3_4, relu4_4 for the VGG-16 relu3_3, relu4_3). Adam, learning rate 1e-3,
batch 4 of 256x256 crops, 40,000 iterations (Section 4.1). The style image is read from
``data.style`` on the first step (never in ``build``, so the task builds without data).

Everything is built through the registry and the :class:`~anime_core.training.TrainingTask` helpers:
the net from the ``faststyle`` generator builder, the style and TV losses by their registered names.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from anime_core.backbones import VGG19Features
from anime_core.errors import ConfigError
from anime_core.training import StepContext, TrainingTask
from anime_example_plugin.losses import gram


def load_style_image(path: str, size: int) -> Tensor:
    """The style target as a (1, 3, size', size') tensor in [-1, 1], long side resized to ``size``."""
    from torchvision.transforms.v2 import functional as TF

    from anime_core.training.data import load_rgb

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"style image {file} does not exist; set data.style=path/to/style.jpg")
    img = load_rgb(file)
    scale = size / max(img.size)
    img = img.resize((max(4, round(img.width * scale)), max(4, round(img.height * scale))))
    return TF.to_dtype(TF.to_image(img), torch.float32, scale=True).unsqueeze(0) * 2 - 1


class FastStyleTask(TrainingTask):
    """Perceptual-loss training of :class:`~anime_example_plugin.generator.TransformNet`."""

    def build(self, steps_per_epoch: int) -> None:
        loss = self.cfg.loss
        layers = tuple(dict.fromkeys([*loss.content_layers, *loss.style_layers]))
        self.index = {name: i for i, name in enumerate(layers)}
        self.vgg = VGG19Features(layers, pretrained=loss.vgg_pretrained)
        self.gram_style = self.loss("gram_style")
        self.tv = self.loss("total_variation")
        self.nets = {"generator": self.build_net("generator")}
        self.optimizers = {"generator": self.adam(self.nets["generator"].parameters(), self.cfg.optim.lr_g)}
        self.target_grams: list[Tensor] | None = None

    def _targets(self, device: torch.device) -> list[Tensor]:
        if self.target_grams is None:
            if not self.cfg.data.style:
                raise ConfigError("faststyle needs a style image: set data.style=path/to/style.jpg")
            image = load_style_image(self.cfg.data.style, self.cfg.loss.style_size).to(device)
            with torch.no_grad():
                feats = self.vgg.to(device)(image)
            self.target_grams = [gram(feats[self.index[name]]) for name in self.cfg.loss.style_layers]
        return self.target_grams

    def losses(self, photo: Tensor) -> dict[str, Tensor]:
        """The three weighted terms and their sum for one batch (the step's forward pass)."""
        w = self.cfg.loss
        targets = self._targets(photo.device)
        out = self.nets["generator"](photo)
        feats = self.vgg(out)
        with torch.no_grad():
            photo_feats = self.vgg(photo)
        content = sum(F.mse_loss(feats[self.index[n]], photo_feats[self.index[n]]) for n in w.content_layers)
        # eq. 4 summed over the set J of style layers (Section 3.2)
        style = sum(self.gram_style(feats[self.index[n]], g) for n, g in zip(w.style_layers, targets, strict=True))
        terms = {
            "content": w.content_weight * content,
            "style": w.style_weight * style,
            "tv": w.tv_weight * self.tv(out),
        }
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, float | Tensor]:
        self.vgg.to(ctx.device)
        terms = self.losses(batch["image"])
        self.optimize("generator", terms["total"], ctx)
        return {k: v.detach() for k, v in terms.items()}
