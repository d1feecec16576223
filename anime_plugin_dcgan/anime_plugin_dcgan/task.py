"""Training recipe of ``dcgan`` (paper 001, sections 3.2-3.2.3; PixelSake options from paper 002).

One step: a discriminator update on a real and a generated batch, then (every ``optim.n_critic``
steps) a generator update. Losses:

- adversarial ``loss.adversarial``: ``bce`` (paper 001's minimax loss, non-saturating G term, the
  DCGAN default), ``hinge`` or ``wgan-gp`` (paper 002, section 5: Wasserstein loss; Gulrajani et al.
  2017 eq. 3 with ``loss.gp_weight``), or ``lsgan``; summed over scales of a multi-scale D;
- ``loss.feature_matching`` x feature matching on discriminator features (paper 001, 3.2.3);
- ``loss.content_l2`` x pixel-wise L2 to the real batch (paper 001, 3.2.3; off by default, it
  pulls samples toward the mean image);
- ``loss.vgg_weight`` x feature matching on pretrained VGG19 features (paper 002's perceptual loss).

Adam lr 2e-4, beta1 0.5 for both nets (paper 001, 3.2.2; Radford et al.), batch 64, and a linear
learning-rate decay to 0 over the last ``1 - optim.decay_start`` of training (paper 001, 3.2.3
"decayed learning rate"). With ``data.conditional`` the anime folder's sub-folders are classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from anime_core.api import build_part
from anime_core.config import get
from anime_core.errors import ConfigError
from anime_core.losses import adversarial, gradient_penalty
from anime_core.training.task import StepContext, TrainingTask
from anime_plugin_dcgan.losses import VGGPerceptual, mean_feature_matching

ADVERSARIAL = ("bce", "hinge", "wgan-gp", "lsgan")


def linear_decay(total_steps: int, start: float) -> Any:
    """LambdaLR factor: 1 until ``start * total_steps``, then linearly down to 0 at ``total_steps``."""
    begin = int(start * total_steps)
    span = max(1, total_steps - begin)
    return lambda step: 1.0 if step < begin else max(0.0, 1.0 - (step - begin) / span)


def total_steps(config: dict[str, Any], steps_per_epoch: int) -> int:
    return int(get(config, "train.max_steps") or int(get(config, "train.epochs", 1)) * steps_per_epoch)


def decay_schedulers(config: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer],
                     steps_per_epoch: int) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
    """``optim.decay: linear``: one :func:`linear_decay` LambdaLR per optimizer; ``none``: no schedulers."""
    if get(config, "optim.decay") != "linear":
        return {}
    decay = linear_decay(total_steps(config, steps_per_epoch), float(get(config, "optim.decay_start")))
    return {k: torch.optim.lr_scheduler.LambdaLR(o, decay) for k, o in optimizers.items()}


class DCGANTask(TrainingTask):
    """See the module docstring."""

    model_name = "dcgan"

    def __init__(self, spec: Any, config: dict[str, Any], registry: Any) -> None:
        super().__init__(spec, config, registry)
        self.classes: list[str] | None = None
        self._dataset: Dataset | None = None
        self._last_g: torch.Tensor = torch.zeros(())
        name = get(config, "loss.adversarial", "bce")
        if name not in ADVERSARIAL:
            raise ConfigError(f"loss.adversarial must be one of {', '.join(ADVERSARIAL)}, not '{name}'")

    # -- data ----------------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = self.registry.dataset("images").builder()(self.config, train=True)
            self.classes = list(getattr(self._dataset, "classes", []) or [])
        return self._dataset

    @property
    def conditional(self) -> bool:
        return bool(get(self.config, "data.conditional", False))

    # -- nets ----------------------------------------------------------------------------------
    def net_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        size = int(get(self.config, "train.image_size"))
        g_opts = {**self.config.get("generator", {}), "image_size": size}
        d_opts = {**self.config.get("discriminator", {}), "image_size": size}
        if self.conditional:
            if self.classes is None:
                self.dataset()
            g_opts.update(num_classes=len(self.classes or []), class_names=list(self.classes or []))
            d_opts["num_classes"] = len(self.classes or [])
        return g_opts, d_opts

    def build(self, steps_per_epoch: int) -> None:
        spec = self.registry.model(self.model_name)
        self.g_opts, d_opts = self.net_options()
        self.nets = {
            "generator": build_part(spec, "generator", self.registry, **self.g_opts),
            "discriminator": build_part(spec, "discriminator", self.registry, **d_opts),
        }
        betas = (float(get(self.config, "optim.beta1")), float(get(self.config, "optim.beta2")))
        self.optimizers = {
            "generator": torch.optim.Adam(self.nets["generator"].parameters(), float(get(self.config, "optim.lr_g")),
                                          betas=betas),
            "discriminator": torch.optim.Adam(self.nets["discriminator"].parameters(),
                                              float(get(self.config, "optim.lr_d")), betas=betas),
        }
        self.schedulers = decay_schedulers(self.config, self.optimizers, steps_per_epoch)
        name = get(self.config, "loss.adversarial", "bce")
        self.adv = adversarial("wgan" if name == "wgan-gp" else name)
        self.gp_weight = float(get(self.config, "loss.gp_weight", 10.0)) if name == "wgan-gp" else 0.0
        self.vgg = None
        if float(get(self.config, "loss.vgg_weight", 0.0)) > 0:
            self.vgg = VGGPerceptual(get(self.config, "loss.vgg_layers"), bool(get(self.config, "loss.vgg_pretrained")),
                                     mode="means")

    # -- one step --------------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        g, d = self.nets["generator"], self.nets["discriminator"]
        og, od = self.optimizers["generator"], self.optimizers["discriminator"]
        real = batch["image"]
        label = batch.get("label") if self.conditional else None
        z = torch.randn(real.size(0), int(self.g_opts.get("latent_dim", 100)), device=real.device)
        fake = g(z, label)

        real_pred, fake_pred = d(real, label), d(fake.detach(), label)
        d_loss = self.adv.d_loss(real_pred, fake_pred)
        logs: dict[str, float | torch.Tensor] = {"d_adv": d_loss.detach()}
        if self.gp_weight:
            gp = gradient_penalty(lambda x: d(x, label), real, fake, self.gp_weight)
            d_loss = d_loss + gp
            logs["gp"] = gp.detach()
        ctx.accelerator.backward(d_loss)
        od.step()
        od.zero_grad(set_to_none=True)

        if ctx.step % int(get(self.config, "optim.n_critic", 1)) == 0:
            self._last_g = self.generator_loss(real, fake, label, logs, ctx).detach()
            og.step()
            og.zero_grad(set_to_none=True)
            od.zero_grad(set_to_none=True)  # the G loss left gradients on D
        logs.update(d=d_loss.detach(), g=self._last_g)
        return logs

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor, label: torch.Tensor | None,
                       logs: dict[str, Any], ctx: StepContext) -> torch.Tensor:
        d = self.nets["discriminator"]
        fm_w = float(get(self.config, "loss.feature_matching", 0.0))
        if fm_w > 0:
            inner = ctx.accelerator.unwrap_model(d)
            fake_pred, fake_feats = inner.forward_features(fake, label)
            with torch.no_grad():
                _, real_feats = inner.forward_features(real, label)
        else:
            fake_pred = d(fake, label)
        loss = self.adv.g_loss(fake_pred)
        logs["g_adv"] = loss.detach()
        if fm_w > 0:
            fm = mean_feature_matching(real_feats, fake_feats)
            loss = loss + fm_w * fm
            logs["g_fm"] = fm.detach()
        l2_w = float(get(self.config, "loss.content_l2", 0.0))
        if l2_w > 0:
            l2 = F.mse_loss(fake, real)
            loss = loss + l2_w * l2
            logs["g_l2"] = l2.detach()
        if self.vgg is not None:
            self.vgg.to(fake.device)
            vgg = self.vgg(fake, real)
            loss = loss + float(get(self.config, "loss.vgg_weight")) * vgg
            logs["g_vgg"] = vgg.detach()
        ctx.accelerator.backward(loss)
        return loss

    # -- samples and export -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """16 images from fixed latents (seed 0), so sample grids are comparable across steps."""
        g = self.nets["generator"]
        device = next(iter(g.parameters())).device
        z = torch.randn(16, int(self.g_opts.get("latent_dim", 100)), generator=torch.Generator().manual_seed(0))
        label = None
        if self.conditional:
            label = (torch.arange(16) % max(1, len(self.classes or []))).to(device)
        return g(z.to(device), label)

    def generator_config(self) -> dict[str, Any]:
        return dict(self.g_opts)
