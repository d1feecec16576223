"""Training recipe of ``pixelsake-sr``, PixelSake's image enhancer (paper 002, section 4, Fig. 8).

Generator loss ``loss.l1 * L1 + loss.perceptual * VGG + loss.adversarial_weight * adversarial``
(the paper names a GAN up-sampler with perceptual losses; the weights 1e-2 / 1 / 5e-3, Adam
1e-4 with betas (0.9, 0.999) and the L1-only warm-up ``loss.pretrain_steps`` are ESRGAN's,
section 4.1, paper 002's ref. [23]; ESRGAN's relativistic loss is replaced by the core's
``loss.adversarial``). PSNR on the held-out split (``data.val_fraction``) is logged every
``eval.every`` steps as ``psnr_val`` next to the bicubic baseline ``psnr_bicubic`` (the paper
reports 19-21 dB after 93,500 steps).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from anime_core.api import build_part
from anime_core.config import get
from anime_core.losses import adversarial
from anime_core.training.task import StepContext, TrainingTask
from anime_plugin_dcgan.data import sr_datasets
from anime_plugin_dcgan.losses import VGGPerceptual, psnr
from anime_plugin_dcgan.task import decay_schedulers


class SRTask(TrainingTask):
    """See the module docstring. Batches are ``{"lr", "hr"}`` pairs."""

    model_name = "pixelsake-sr"

    def __init__(self, spec: Any, config: dict[str, Any], registry: Any) -> None:
        super().__init__(spec, config, registry)
        self._train: Dataset | None = None
        self.val: Dataset | None = None
        self._psnr = torch.full((), float("nan"))
        self._bicubic = torch.full((), float("nan"))

    def dataset(self) -> Dataset:
        if self._train is None:
            self._train, self.val = sr_datasets(self.config)
        return self._train

    def build(self, steps_per_epoch: int) -> None:
        spec = self.registry.model(self.model_name)
        self.nets = {
            "generator": build_part(spec, "generator", self.registry, **self.config.get("generator", {})),
            "discriminator": build_part(spec, "discriminator", self.registry,
                                        **{**self.config.get("discriminator", {}),
                                           "image_size": int(get(self.config, "train.image_size"))}),
        }
        betas = (float(get(self.config, "optim.beta1")), float(get(self.config, "optim.beta2")))
        self.optimizers = {k: torch.optim.Adam(n.parameters(), float(get(self.config, f"optim.lr_{k[0]}")), betas=betas)
                           for k, n in self.nets.items()}
        self.schedulers = decay_schedulers(self.config, self.optimizers, steps_per_epoch)
        self.adv = adversarial(get(self.config, "loss.adversarial", "bce"))
        self.vgg = None
        if float(get(self.config, "loss.perceptual", 0.0)) > 0:
            self.vgg = VGGPerceptual(get(self.config, "loss.vgg_layers"), bool(get(self.config, "loss.vgg_pretrained")))
        if self.val is None and self._train is None:
            self.dataset()

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        g, d = self.nets["generator"], self.nets["discriminator"]
        og, od = self.optimizers["generator"], self.optimizers["discriminator"]
        lr_img, hr = batch["lr"], batch["hr"]
        sr = g(lr_img)
        adv_w = float(get(self.config, "loss.adversarial_weight", 0.0))
        use_gan = adv_w > 0 and ctx.step >= int(get(self.config, "loss.pretrain_steps", 0))
        logs: dict[str, float | torch.Tensor] = {}
        if use_gan:
            d_loss = self.adv.d_loss(d(hr), d(sr.detach()))
            ctx.accelerator.backward(d_loss)
            od.step()
            od.zero_grad(set_to_none=True)
            logs["d"] = d_loss.detach()
        l1 = F.l1_loss(sr, hr)
        loss = float(get(self.config, "loss.l1")) * l1
        logs["l1"] = l1.detach()
        if self.vgg is not None:
            self.vgg.to(sr.device)
            perc = self.vgg(sr, hr)
            loss = loss + float(get(self.config, "loss.perceptual")) * perc
            logs["perceptual"] = perc.detach()
        if use_gan:
            g_adv = self.adv.g_loss(d(sr))
            loss = loss + adv_w * g_adv
            logs["g_adv"] = g_adv.detach()
        ctx.accelerator.backward(loss)
        og.step()
        og.zero_grad(set_to_none=True)
        od.zero_grad(set_to_none=True)
        every = int(get(self.config, "eval.every", 0) or 0)
        if self.val is not None and every and ((ctx.step + 1) % every == 0 or bool(torch.isnan(self._psnr))):
            self._psnr, self._bicubic = self.evaluate(ctx.device)
        logs.update(g=loss.detach(), psnr_train=psnr(sr.detach(), hr))
        if self.val is not None and every:
            logs.update(psnr_val=self._psnr, psnr_bicubic=self._bicubic)
        return logs

    @torch.no_grad()
    def evaluate(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean PSNR (dB) of the model and of bicubic up-sampling on up to ``eval.max_images`` held-out images."""
        g = self.nets["generator"]
        was_training = g.training
        g.eval()
        n = min(len(self.val), int(get(self.config, "eval.max_images", 32)))  # type: ignore[arg-type]
        ours, base = [], []
        with torch.random.fork_rng(devices=[]):
            for batch in DataLoader(torch.utils.data.Subset(self.val, range(n)), batch_size=8):  # type: ignore[arg-type]
                lr_img, hr = batch["lr"].to(device), batch["hr"].to(device)
                ours.append(psnr(g(lr_img), hr) * len(hr))
                up = F.interpolate(lr_img, size=hr.shape[-2:], mode="bicubic", align_corners=False)
                base.append(psnr(up, hr) * len(hr))
        g.train(was_training)
        return torch.stack(ours).sum().cpu() / n, torch.stack(base).sum().cpu() / n

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rows: bicubic up-sampling, the model's output, the ground truth."""
        lr_img, hr = batch["lr"], batch["hr"]
        up = F.interpolate(lr_img, size=hr.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)
        return torch.cat([up, self.nets["generator"](lr_img).clamp(-1, 1), hr])
