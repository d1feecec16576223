"""Training recipe of ``pixelsake-sr``, the image enhancer of Shrivastava et al., "PixelSake: Deep
Convolution Generative Adversarial Network" (section 4, Fig. 8).

Generator loss ``loss.l1_weight * L1 + loss.perceptual_weight * VGG + loss.adversarial_weight *
adversarial``: the paper names a GAN up-sampler; the weights 1e-2 / 1 / 5e-3, Adam 1e-4 with betas
(0.9, 0.999) and the L1-only warm-up ``loss.pretrain_steps`` are those of its reference [23], Wang
et al., "ESRGAN: Enhanced super-resolution generative adversarial networks", section 4.1; ESRGAN's
relativistic loss is replaced by the registered ``loss.adversarial``. PSNR on the held-out split
(``data.val_fraction``) is logged every ``eval.every`` steps as ``psnr_val`` next to the bicubic
baseline ``psnr_bicubic`` (the paper reports 19-21 dB after 93,500 steps).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from anime_core.ops import psnr
from anime_core.training.task import StepContext, TrainingTask


class SRTask(TrainingTask):
    """See the module docstring. Batches are ``{"lr", "hr"}`` pairs in [-1, 1]."""

    def __init__(self, spec: Any, config: Any, registry: Any) -> None:
        super().__init__(spec, config, registry)
        self._train: Dataset | None = None
        self.val: Dataset | None = None
        self._psnr = torch.full((), float("nan"))
        self._bicubic = torch.full((), float("nan"))

    def dataset(self) -> Dataset:
        """The registered ``sr_pairs`` kind: the training split; its held-out split becomes ``self.val``."""
        if self._train is None:
            self._train = super().dataset()
            self.val = getattr(self._train, "held_out", None)
        return self._train

    def required_weights(self) -> list[str]:
        from anime_core.weights.known import VGG19_KEY

        return [VGG19_KEY] if self.cfg.loss.perceptual_weight > 0 and self.cfg.loss.vgg_pretrained else []

    def build(self, steps_per_epoch: int) -> None:
        self.dataset()  # the held-out split for evaluate()
        g = self.build_net("generator")
        d = self.build_net("discriminator", image_size=self.cfg.train.image_size)
        self.nets = {"generator": g, "discriminator": d}
        optim, loss = self.cfg.optim, self.cfg.loss
        self.optimizers = {"generator": self.adam(g.parameters(), optim.lr_g),
                           "discriminator": self.adam(d.parameters(), optim.lr_d)}
        self.adv = self.loss(loss.adversarial)
        self.l1 = self.loss("l1")
        self.vgg = None
        if loss.perceptual_weight > 0:
            self.vgg = self.loss("vgg_perceptual", layers=loss.vgg_layers, pretrained=loss.vgg_pretrained, mode="pairs")

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        g, d = self.nets["generator"], self.nets["discriminator"]
        weights = self.cfg.loss
        lr_img, hr = batch["lr"], batch["hr"]
        sr = g(lr_img)
        use_gan = weights.adversarial_weight > 0 and ctx.step >= weights.pretrain_steps
        logs: dict[str, float | torch.Tensor] = {}
        if use_gan:
            d_loss = self.adv.d_loss(d(hr), d(sr.detach()))
            self.optimize("discriminator", d_loss, ctx)
            logs["d"] = d_loss.detach()

        with self.frozen(d):
            l1 = self.l1(sr, hr)
            loss = weights.l1_weight * l1
            logs["l1"] = l1.detach()
            if self.vgg is not None:
                self.vgg.to(sr.device)
                perc = self.vgg(sr, hr)
                loss = loss + weights.perceptual_weight * perc
                logs["perceptual"] = perc.detach()
            if use_gan:
                g_adv = self.adv.g_loss(d(sr))
                loss = loss + weights.adversarial_weight * g_adv
                logs["g_adv"] = g_adv.detach()
            self.optimize("generator", loss, ctx)

        every = self.cfg.eval.every
        if self.val is not None and every and ((ctx.step + 1) % every == 0 or bool(torch.isnan(self._psnr))):
            self._psnr, self._bicubic = self.evaluate(ctx.device)
        logs.update(g=loss.detach(), psnr_train=psnr(sr.detach(), hr, data_range=2.0).mean())
        if self.val is not None and every:
            logs.update(psnr_val=self._psnr, psnr_bicubic=self._bicubic)
        return logs

    @torch.no_grad()
    def evaluate(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean PSNR (dB) of the model and of bicubic up-sampling on up to ``eval.max_images`` held-out images."""
        g = self.nets["generator"]
        was_training = g.training
        g.eval()
        n = min(len(self.val), self.cfg.eval.max_images)  # type: ignore[arg-type]
        ours, base = [], []
        with torch.random.fork_rng(devices=[]):
            for batch in DataLoader(Subset(self.val, range(n)), batch_size=8):  # type: ignore[arg-type]
                lr_img, hr = batch["lr"].to(device), batch["hr"].to(device)
                ours.append(psnr(g(lr_img), hr, data_range=2.0).sum())
                up = F.interpolate(lr_img, size=hr.shape[-2:], mode="bicubic", align_corners=False)
                base.append(psnr(up, hr, data_range=2.0).sum())
        g.train(was_training)
        return torch.stack(ours).sum().cpu() / n, torch.stack(base).sum().cpu() / n

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rows: bicubic up-sampling, the model's output, the ground truth."""
        lr_img, hr = batch["lr"], batch["hr"]
        up = F.interpolate(lr_img, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        return torch.cat([up, self.nets["generator"](lr_img).clamp(-1, 1), hr])
