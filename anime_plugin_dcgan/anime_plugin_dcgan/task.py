"""Training recipe of ``dcgan``: Begum et al., "Anime face generating using deep learning",
sections 3.2.2-3.2.3, with the options of Shrivastava et al., "PixelSake: Deep Convolution
Generative Adversarial Network".

One step: a discriminator update on a real and a generated batch, then (every ``optim.n_critic``
steps) a generator update with the discriminator frozen. Losses, all registered by name:

- ``loss.adversarial``: ``bce`` (Begum et al., 3.2.3: the minimax adversarial loss; non-saturating
  G term, the DCGAN default), ``hinge``, ``wgan`` (PixelSake, section 5: the Wasserstein loss; with
  ``loss.gp_weight`` the gradient penalty of Gulrajani et al., "Improved training of Wasserstein
  GANs", section 4, eq. 3) or ``lsgan``; summed over the scales of a multi-scale discriminator;
- ``loss.feature_matching_weight`` x ``mean_feature_matching`` on discriminator features (Begum et
  al., 3.2.3);
- ``loss.content_l2_weight`` x ``content_l2``, pixel L2 to the real batch (Begum et al., 3.2.3; off by
  default, it pulls samples toward the mean image);
- ``loss.vgg_weight`` x ``vgg_perceptual`` feature matching on VGG19 features (PixelSake, abstract).

Adam lr 2e-4 for both nets (Begum et al., 3.2.2) with betas (0.5, 0.999) (Radford et al.,
"Unsupervised representation learning with deep convolutional generative adversarial networks",
section 4), batch 64, and with ``schedule.decay: linear`` the learning rate falls linearly to 0 from
epoch ``schedule.decay_start_epoch`` to the end of training (Begum et al., 3.2.3: "decayed learning
rate"; the core builds the schedule, :mod:`anime_core.training.schedule`). With ``data.conditional``
the anime folder's sub-folders are classes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from anime_core.losses import gradient_penalty
from anime_core.training.task import StepContext, TrainingTask


class DCGANTask(TrainingTask):
    """See the module docstring."""

    def __init__(self, spec: Any, config: Any, registry: Any) -> None:
        super().__init__(spec, config, registry)
        self.classes: list[str] = []
        self._dataset: Dataset | None = None
        self._last_g: torch.Tensor = torch.zeros(())

    # -- data ----------------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        """The registered ``images`` kind; with ``data.conditional`` its class folders name the classes."""
        if self._dataset is None:
            build = self.registry.dataset(self.spec.dataset or "images").builder()
            self._dataset = build(self.cfg, train=True, labels=self.cfg.data.conditional)
            self.classes = list(getattr(self._dataset, "classes", []) or [])
        return self._dataset

    # -- nets ----------------------------------------------------------------------------------
    def net_overrides(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options the run decides over the ``generator:``/``discriminator:`` sections: size and classes."""
        size = self.cfg.train.image_size
        g_opts: dict[str, Any] = {"image_size": size}
        d_opts: dict[str, Any] = {"image_size": size}
        if self.cfg.data.conditional:
            self.dataset()
            g_opts.update(num_classes=len(self.classes), class_names=list(self.classes))
            d_opts["num_classes"] = len(self.classes)
        return g_opts, d_opts

    def required_weights(self) -> list[str]:
        from anime_core.weights.known import VGG19_KEY

        return [VGG19_KEY] if self.cfg.loss.vgg_weight > 0 and self.cfg.loss.vgg_pretrained else []

    def build(self, steps_per_epoch: int) -> None:
        g_over, d_over = self.net_overrides()
        self.g_opts = {**self.cfg.generator, **g_over}
        self.latent_dim = int(self.g_opts["latent_dim"])
        g, d = self.build_net("generator", **g_over), self.build_net("discriminator", **d_over)
        self.nets = {"generator": g, "discriminator": d}
        optim = self.cfg.optim
        self.optimizers = {"generator": self.adam(g.parameters(), optim.lr_g),
                           "discriminator": self.adam(d.parameters(), optim.lr_d)}
        loss = self.cfg.loss
        self.adv = self.loss(loss.adversarial)
        self.gp_weight = loss.gp_weight if loss.adversarial == "wgan" else 0.0
        self.feature_matching = self.loss("mean_feature_matching") if loss.feature_matching_weight > 0 else None
        self.content_l2 = self.loss("content_l2") if loss.content_l2_weight > 0 else None
        self.vgg = None
        if loss.vgg_weight > 0:
            self.vgg = self.loss("vgg_perceptual", layers=loss.vgg_layers, pretrained=loss.vgg_pretrained, mode="means")

    # -- one step --------------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        g, d = self.nets["generator"], self.nets["discriminator"]
        real = batch["image"]
        label = batch.get("label") if self.cfg.data.conditional else None
        z = torch.randn(real.size(0), self.latent_dim, device=real.device)
        fake = g(z, label)

        d_loss = self.adv.d_loss(d(real, label), d(fake.detach(), label))
        logs: dict[str, float | torch.Tensor] = {"d_adv": d_loss.detach()}
        if self.gp_weight:
            gp = gradient_penalty(lambda x: d(x, label), real, fake, self.gp_weight)
            d_loss = d_loss + gp
            logs["gp"] = gp.detach()
        self.optimize("discriminator", d_loss, ctx)

        if ctx.step % self.cfg.optim.n_critic == 0:
            with self.frozen(d):
                g_loss = self.generator_loss(real, fake, label, logs, ctx)
                self.optimize("generator", g_loss, ctx)
            self._last_g = g_loss.detach()
        logs.update(d=d_loss.detach(), g=self._last_g)
        return logs

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor, label: torch.Tensor | None,
                       logs: dict[str, Any], ctx: StepContext) -> torch.Tensor:
        """The weighted generator loss; each term is logged (``g_adv``, ``g_fm``, ``g_l2``, ``g_vgg``)."""
        d, weights = self.nets["discriminator"], self.cfg.loss
        if self.feature_matching is not None:
            inner = ctx.accelerator.unwrap_model(d)  # forward_features is not on a DDP wrapper
            fake_pred, fake_feats = inner.forward_features(fake, label)
            with torch.no_grad():
                _, real_feats = inner.forward_features(real, label)
        else:
            fake_pred = d(fake, label)
        loss = self.adv.g_loss(fake_pred)
        logs["g_adv"] = loss.detach()
        if self.feature_matching is not None:
            fm = self.feature_matching(real_feats, fake_feats)
            loss = loss + weights.feature_matching_weight * fm
            logs["g_fm"] = fm.detach()
        if self.content_l2 is not None:
            l2 = self.content_l2(fake, real)
            loss = loss + weights.content_l2_weight * l2
            logs["g_l2"] = l2.detach()
        if self.vgg is not None:
            self.vgg.to(fake.device)
            vgg = self.vgg(fake, real)
            loss = loss + weights.vgg_weight * vgg
            logs["g_vgg"] = vgg.detach()
        return loss

    # -- samples and export -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """16 images from fixed latents (seed 0), so sample grids are comparable across steps."""
        g = self.nets["generator"]
        device = next(iter(g.parameters())).device
        z = torch.randn(16, self.latent_dim, generator=torch.Generator().manual_seed(0))
        label = None
        if self.cfg.data.conditional:
            label = (torch.arange(16) % max(1, len(self.classes))).to(device)
        return g(z.to(device), label)

    def generator_config(self) -> dict[str, Any]:
        return dict(self.g_opts)
