"""CycleGAN training step (paper 3.5, 3.5.3 and 4.2).

Nets: ``generator`` G (photo -> anime), ``generator_inverse`` F (anime -> photo),
``discriminator`` D_Y (judges anime images) and ``discriminator_inverse`` D_X (judges photos).
Optimizers: Adam(lr 2e-4, betas 0.5/0.999) over G and F together and over D_Y and D_X together,
as CycleGAN does; both decay linearly to 0 after epoch 140 of 250 (:mod:`.schedule`).

One step (CycleGAN's order): update G and F on eq. 1 with the discriminators frozen, then update
the discriminators on real images against fakes drawn through the history pools, each D loss
halved (CycleGAN slows D relative to G this way). Both directions are exported, so one weights
file serves ``--direction photo2anime`` and ``anime2photo``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from anime_core import config as cfglib
from anime_core.losses import adversarial
from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_cyclegan.data import build_dataset
from anime_plugin_cyclegan.losses import CycleLoss, IdentityLoss
from anime_plugin_cyclegan.pool import ImagePool
from anime_plugin_cyclegan.schedule import linear_decay_scheduler


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)


class CycleGANTask(TrainingTask):
    """Two generators, two PatchGAN discriminators, LSGAN/BCE + cycle + identity losses."""

    export_parts = ("generator", "generator_inverse")

    def build(self, steps_per_epoch: int) -> None:
        from anime_core.api import build_part

        spec = self.registry.model("cyclegan")
        g_opts, d_opts = dict(self.config.get("generator") or {}), dict(self.config.get("discriminator") or {})
        self.nets = {
            "generator": build_part(spec, "generator", self.registry, **g_opts),
            "generator_inverse": build_part(spec, "generator", self.registry, **g_opts),
            "discriminator": build_part(spec, "discriminator", self.registry, **d_opts),
            "discriminator_inverse": build_part(spec, "discriminator", self.registry, **d_opts),
        }
        lr = float(cfglib.get(self.config, "optim.lr"))
        betas = (float(cfglib.get(self.config, "optim.beta1")), float(cfglib.get(self.config, "optim.beta2")))
        gens = itertools.chain(self.nets["generator"].parameters(), self.nets["generator_inverse"].parameters())
        discs = itertools.chain(self.nets["discriminator"].parameters(),
                                self.nets["discriminator_inverse"].parameters())
        self.optimizers = {
            "generator": torch.optim.Adam(gens, lr=lr, betas=betas),
            "discriminator": torch.optim.Adam(discs, lr=lr, betas=betas),
        }
        epochs = int(cfglib.get(self.config, "train.epochs"))
        decay_start = int(cfglib.get(self.config, "optim.decay_start_epoch"))
        self.schedulers = {k: linear_decay_scheduler(o, epochs, decay_start, steps_per_epoch)
                           for k, o in self.optimizers.items()}
        self.adv = adversarial(str(cfglib.get(self.config, "loss.gan")))
        self.lambda_cycle = float(cfglib.get(self.config, "loss.lambda_cycle"))
        self.lambda_identity = float(cfglib.get(self.config, "loss.lambda_identity"))
        pool = int(cfglib.get(self.config, "loss.pool_size"))
        self.pool_anime, self.pool_photo = ImagePool(pool), ImagePool(pool)
        self.cycle, self.identity = CycleLoss(), IdentityLoss()

    def dataset(self) -> Any:
        return build_dataset(self.config)

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        acc = ctx.accelerator
        g, f = self.nets["generator"], self.nets["generator_inverse"]
        d_y, d_x = self.nets["discriminator"], self.nets["discriminator_inverse"]
        x, y = batch["photo"], batch["anime"]

        # -- G and F (eq. 1); the discriminators are used unwrapped and frozen so no grads reach them
        plain_dy, plain_dx = acc.unwrap_model(d_y), acc.unwrap_model(d_x)
        _set_requires_grad([plain_dy, plain_dx], False)
        fake_y, fake_x = g(x), f(y)
        rec_x, rec_y = f(fake_y), g(fake_x)
        adv = self.adv.g_loss(plain_dy(fake_y)) + self.adv.g_loss(plain_dx(fake_x))
        cycle = self.cycle(x, rec_x, y, rec_y)
        loss = adv + self.lambda_cycle * cycle
        logs: dict[str, float | torch.Tensor] = {}
        if self.lambda_identity > 0:
            identity = self.identity(x, f(x), y, g(y))
            loss = loss + self.lambda_identity * self.lambda_cycle * identity
            logs["identity"] = identity.detach()
        acc.backward(loss)
        self.optimizers["generator"].step()
        self.optimizers["generator"].zero_grad()
        _set_requires_grad([plain_dy, plain_dx], True)

        # -- D_Y and D_X on real vs pooled fakes, each halved
        pooled_y = self.pool_anime.query(fake_y.detach())
        pooled_x = self.pool_photo.query(fake_x.detach())
        loss_dy = 0.5 * self.adv.d_loss(d_y(y), d_y(pooled_y))
        loss_dx = 0.5 * self.adv.d_loss(d_x(x), d_x(pooled_x))
        acc.backward(loss_dy + loss_dx)
        self.optimizers["discriminator"].step()
        self.optimizers["discriminator"].zero_grad()
        return {"g_adv": adv.detach(), "cycle": cycle.detach(), **logs, "g_total": loss.detach(),
                "d_anime": loss_dy.detach(), "d_photo": loss_dx.detach()}

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rows: photos, G(photos), anime images, F(anime images)."""
        x, y = batch["photo"], batch["anime"]
        return torch.cat([x, self.nets["generator"](x), y, self.nets["generator_inverse"](y)])

    def state_dict(self) -> dict[str, Any]:
        return {"pool_anime": self.pool_anime.state_dict()["images"],
                "pool_photo": self.pool_photo.state_dict()["images"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool_anime.load_state_dict({"images": state["pool_anime"]})
        self.pool_photo.load_state_dict({"images": state["pool_photo"]})
