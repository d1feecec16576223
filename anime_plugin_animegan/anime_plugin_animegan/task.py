"""AnimeGAN training on the core loop: G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN
for photo animation", section 3.3 (losses of section 3.2).

Phase 1, initialisation (``train.init_epochs``, 1): the generator alone is trained with the
content loss only (eq. 2, weighted by ``loss.content_weight`` as in the official code), Adam
with ``optim.init_lr`` 1e-4.
Phase 2, adversarial (the rest of ``train.epochs``; the default 101 = 1 init + 100 epochs):
Adam (``optim.betas`` 0.5, 0.999), ``optim.lr_g`` 8e-5 and ``optim.lr_d`` 1.6e-4. Each step first
updates D on eq. 6 (``loss.adversarial_weight`` times real anime, generated, grayscale anime and
``loss.edge_weight`` x edge-smoothed grayscale anime), then G on eq. 5 (adversarial + content +
grayscale style + colour, each times its ``loss.*_weight``) with D frozen, the order of the
official code.

The frozen VGG19 (``conv4_4``) belongs to the content loss, which the style loss shares; it is
kept outside ``self.nets``: it is not trained, checkpointed or wrapped for distributed training,
and it follows the accelerator's device.

Initial weights: ``train.weight_init`` (:mod:`.weights_init`; the official code's by default).
A run started from trained weights (``anime train animegan --init STYLE|FILE``) skips the
initialisation phase unless ``train.init_epochs`` is set (``finetune_defaults``). With
``data.edge_images: color`` (Fig. 5 "B") the edge term of eq. 6 sees colour edge-blurred frames.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_animegan.data import SMOOTH_KEYS
from anime_plugin_animegan.weights_init import init_discriminator, init_generator


class AnimeGANTask(TrainingTask):
    """The model's ``generator`` (``animegan``, v1 by default) and ``discriminator`` (``animegan.d``)."""

    finetune_defaults: ClassVar[dict[str, Any]] = {"train.init_epochs": 0}  # the generator is trained already

    def required_weights(self) -> list[str]:
        from anime_core.weights.known import VGG19_KEY

        return [VGG19_KEY] if self.cfg.loss.vgg_pretrained else []

    def build(self, steps_per_epoch: int) -> None:
        cfg = self.cfg
        g = init_generator(self.build_net("generator"), cfg.generator.variant, cfg.train.weight_init)
        d = init_discriminator(self.build_net("discriminator"), cfg.train.weight_init)
        self.nets = {"generator": g, "discriminator": d}
        self.optimizers = {
            "generator_init": self.adam(g.parameters(), cfg.optim.init_lr),
            "generator": self.adam(g.parameters(), cfg.optim.lr_g),
            "discriminator": self.adam(d.parameters(), cfg.optim.lr_d),
        }
        self.init_steps = cfg.train.init_epochs * steps_per_epoch
        self.adv = self.loss(cfg.loss.adversarial)
        self.d_loss = self.loss("animegan_d", adversarial=self.adv, edge_weight=cfg.loss.edge_weight,
                                gray_weight=cfg.loss.gray_adversarial_weight)
        self.content = self.loss("vgg_content", pretrained=cfg.loss.vgg_pretrained)
        self.style = self.loss("gram_grayscale", extractor=self.content.extractor)  # one VGG for both
        self.color = self.loss("color_yuv")

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        self.content.to(ctx.device)
        if ctx.step < self.init_steps:
            return self._init_step(batch, ctx)
        return self._gan_step(batch, ctx)

    def _init_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        photo = batch["photo"]
        loss = self.cfg.loss.content_weight * self.content(photo, self.nets["generator"](photo))
        self.optimize("generator_init", loss, ctx)
        return {"init_content": loss.detach()}

    def _gan_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        g, d, w = self.nets["generator"], self.nets["discriminator"], self.cfg.loss
        photo, anime = batch["photo"], batch["anime"]
        gray, smooth = batch["anime_gray"], batch[SMOOTH_KEYS[self.cfg.data.edge_images]]
        fake = g(photo)

        # D on eq. 6: one forward over the four image sets (InstanceNorm keeps samples independent)
        n = photo.size(0)
        preds = d(torch.cat([anime, fake.detach(), gray, smooth])).split([anime.size(0), n, gray.size(0), n])
        d_loss = w.adversarial_weight * self.d_loss(*preds)
        self.optimize("discriminator", d_loss, ctx)

        # G on eq. 5; VGG runs once per image set, both perceptual losses take its features
        with self.frozen(d):
            with torch.no_grad():
                photo_feat, gray_feat = self.content.features(torch.cat([photo, gray])).split([n, gray.size(0)])
            fake_feat = self.content.features(fake)
            losses = {
                "g_adv": w.adversarial_weight * self.adv.g_loss(d(fake)),
                "content": w.content_weight * self.content.from_features(photo_feat, fake_feat),
                "style": w.style_weight * self.style.from_features(fake_feat, gray_feat),
                "color": w.color_weight * self.color(photo, fake),
            }
            g_loss = sum(losses.values())
            self.optimize("generator", g_loss, ctx)
        return {**{k: v.detach() for k, v in losses.items()}, "g_loss": g_loss.detach(), "d_loss": d_loss.detach()}
