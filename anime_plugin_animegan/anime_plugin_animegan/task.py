"""AnimeGAN training (paper 3.3) on the core loop.

Phase 1, initialisation (``train.init_epochs``, 1): the generator alone is trained with the
content loss only (eq. 2, weighted by w_con as in the official code), Adam lr 1e-4.
Phase 2, adversarial (the rest of ``train.epochs``; the default 101 = 1 init + 100 epochs):
Adam(beta1 0.5, beta2 0.999), lr G 8e-5 and lr D 1.6e-4. Each step first updates D on eq. 6
(w_adv times real anime, generated, grayscale anime and 0.1 x edge-smoothed grayscale anime), then
G on eq. 5 (w_adv LSGAN + w_con content + w_gra grayscale style + w_col colour) with D frozen,
the order of the official code.

The frozen VGG19 (``conv4_4``) is kept outside ``self.nets``: it is not trained, checkpointed or
wrapped for distributed training; it follows the accelerator's device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from anime_core import config as cfglib
from anime_core.losses import LSGANLoss
from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_animegan.losses import color_loss, content_loss, discriminator_loss, style_loss


class AnimeGANTask(TrainingTask):
    """Generator ``animegan`` (v1 by default) and discriminator ``animegan.d``."""

    def _f(self, key: str) -> float:
        return float(cfglib.get(self.config, key))

    def build(self, steps_per_epoch: int) -> None:
        from anime_core.api import build_part
        from anime_core.backbones import VGG19Features

        spec = self.registry.model("animegan")
        self.nets = {
            "generator": build_part(spec, "generator", self.registry, **dict(self.config.get("generator") or {})),
            "discriminator": build_part(spec, "discriminator", self.registry,
                                        **dict(self.config.get("discriminator") or {})),
        }
        betas = (self._f("optim.beta1"), self._f("optim.beta2"))
        g, d = self.nets["generator"], self.nets["discriminator"]
        self.optimizers = {
            "generator_init": torch.optim.Adam(g.parameters(), lr=self._f("optim.init_lr"), betas=betas),
            "generator": torch.optim.Adam(g.parameters(), lr=self._f("optim.lr_g"), betas=betas),
            "discriminator": torch.optim.Adam(d.parameters(), lr=self._f("optim.lr_d"), betas=betas),
        }
        self.init_steps = int(cfglib.get(self.config, "train.init_epochs", 1)) * steps_per_epoch
        pretrained = bool(cfglib.get(self.config, "loss.vgg_pretrained"))
        self.vgg: nn.Module = VGG19Features(("conv4_4",), pretrained=pretrained)
        self.adv = LSGANLoss()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x)[0]

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        self.vgg.to(ctx.device)
        if ctx.step < self.init_steps:
            return self._init_step(batch, ctx)
        return self._gan_step(batch, ctx)

    def _init_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        g, opt = self.nets["generator"], self.optimizers["generator_init"]
        photo = batch["photo"]
        with torch.no_grad():
            target = self._features(photo)
        loss = self._f("loss.con") * content_loss(target, self._features(g(photo)))
        ctx.accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return {"init_content": loss.detach()}

    def _gan_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d = self.nets["generator"], self.nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        photo, anime = batch["photo"], batch["anime"]
        gray, smooth = batch["anime_gray"], batch["anime_smooth_gray"]
        w_adv = self._f("loss.adv")
        fake = g(photo)

        # D on eq. 6: one forward over the four image sets (InstanceNorm keeps samples independent)
        d.requires_grad_(True)
        n = photo.size(0)
        preds = d(torch.cat([anime, fake.detach(), gray, smooth])).split([anime.size(0), n, gray.size(0), n])
        d_loss = w_adv * discriminator_loss(*preds, edge_weight=self._f("loss.edge"),
                                            gray_weight=self._f("loss.gray_adv"), adv=self.adv)
        ctx.accelerator.backward(d_loss)
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)

        # G on eq. 5 with D frozen
        d.requires_grad_(False)
        with torch.no_grad():
            photo_feat, gray_feat = self._features(torch.cat([photo, gray])).split([n, gray.size(0)])
        fake_feat = self._features(fake)
        losses = {
            "g_adv": w_adv * self.adv.g_loss(d(fake)),
            "content": self._f("loss.con") * content_loss(photo_feat, fake_feat),
            "style": self._f("loss.gra") * style_loss(fake_feat, gray_feat),
            "color": self._f("loss.col") * color_loss(photo, fake),
        }
        g_loss = sum(losses.values())
        ctx.accelerator.backward(g_loss)
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        d.requires_grad_(True)
        return {**{k: v.detach() for k, v in losses.items()}, "g_loss": g_loss.detach(), "d_loss": d_loss.detach()}

    def generator_config(self) -> dict[str, Any]:
        return dict(self.config.get("generator") or {})
