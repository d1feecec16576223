"""CycleGAN training step of Sharma & Das, "A CycleGAN Framework for Anime Style Image Synthesis based
on U-Net and Self-Attention" (sections 3.5, 3.5.3 and 4.2).

Nets: ``generator`` G (photo -> anime), ``generator_inverse`` F (anime -> photo),
``discriminator`` D_Y (judges anime images) and ``discriminator_inverse`` D_X (judges photos),
all built through the registry from the config's ``generator:``/``discriminator:`` sections.
Optimizers: Adam (``optim.lr_g``/``optim.lr_d`` 2e-4, ``optim.betas`` 0.5/0.999, section 4.2,
Table 1) over G and F together and over D_Y and D_X together, as CycleGAN does; with
``schedule.decay: linear`` both stay constant for 140 of 250 epochs and then decay linearly to 0 at
the run's last step, per optimizer step so the decay is smooth within an epoch (epochs 0, 140,
195, 250 -> 2e-4, 2e-4, 1e-4, 0). The core builds the schedule over the steps the run really takes
(``train.max_steps`` when set; :mod:`anime_core.training.schedule`).

One step (CycleGAN's order): update G and F on eq. 1 with the discriminators frozen, then update
the discriminators on real images against fakes drawn through the history pools, each D loss
halved (CycleGAN slows D relative to G this way). Both directions are exported, so one weights
file serves ``--direction photo2anime`` and ``anime2photo``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_cyclegan.pool import ImagePool

#: the generators' encoder halves by attribute: U-Net (and pix2pix U-Net) ``down`` (+ its attention), ResNet ``encoder``
ENCODER_PARTS = ("down", "down_attention", "encoder")


class CycleGANTask(TrainingTask):
    """Two generators, two PatchGAN discriminators, adversarial + cycle + identity losses."""

    export_parts = ("generator", "generator_inverse")

    def build(self, steps_per_epoch: int) -> None:
        cfg = self.cfg
        self.nets = {
            "generator": self.build_net("generator"),
            "generator_inverse": self.build_net("generator"),
            "discriminator": self.build_net("discriminator"),
            "discriminator_inverse": self.build_net("discriminator"),
        }
        gens = itertools.chain(self.nets["generator"].parameters(), self.nets["generator_inverse"].parameters())
        discs = itertools.chain(self.nets["discriminator"].parameters(),
                                self.nets["discriminator_inverse"].parameters())
        self.optimizers = {"generator": self.adam(gens, cfg.optim.lr_g),
                           "discriminator": self.adam(discs, cfg.optim.lr_d)}
        self.adv = self.loss(cfg.loss.adversarial)
        self.cycle, self.identity = self.loss("cycle_l1"), self.loss("identity_l1")
        self.pool_anime, self.pool_photo = ImagePool(cfg.loss.pool_size), ImagePool(cfg.loss.pool_size)

    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        weights = self.cfg.loss
        g, f = self.nets["generator"], self.nets["generator_inverse"]
        d_y, d_x = self.nets["discriminator"], self.nets["discriminator_inverse"]
        x, y = batch["photo"], batch["anime"]

        # -- G and F (eq. 1). The discriminators judge unwrapped: a DDP wrapper would wait for
        # gradients of parameters that are frozen here.
        plain_dy, plain_dx = ctx.accelerator.unwrap_model(d_y), ctx.accelerator.unwrap_model(d_x)
        logs: dict[str, float | torch.Tensor] = {}
        with self.frozen(plain_dy, plain_dx):
            fake_y, fake_x = g(x), f(y)
            rec_x, rec_y = f(fake_y), g(fake_x)
            adv = self.adv.g_loss(plain_dy(fake_y)) + self.adv.g_loss(plain_dx(fake_x))
            cycle = self.cycle(x, rec_x, y, rec_y)
            loss = adv + weights.cycle_weight * cycle
            if weights.identity_weight > 0:
                identity = self.identity(x, f(x), y, g(y))
                loss = loss + weights.identity_weight * identity
                logs["identity"] = identity.detach()
            self.optimize("generator", loss, ctx)

        # -- D_Y and D_X on real vs pooled fakes, each halved
        pooled_y = self.pool_anime.query(fake_y.detach())
        pooled_x = self.pool_photo.query(fake_x.detach())
        loss_dy = 0.5 * self.adv.d_loss(d_y(y), d_y(pooled_y))
        loss_dx = 0.5 * self.adv.d_loss(d_x(x), d_x(pooled_x))
        self.optimize("discriminator", loss_dy + loss_dx, ctx)
        return {"g_adv": adv.detach(), "cycle": cycle.detach(), **logs, "g_total": loss.detach(),
                "d_anime": loss_dy.detach(), "d_photo": loss_dx.detach()}

    def freezable(self) -> dict[str, list[torch.nn.Module]]:
        """``train.freeze=encoder``: the downsampling half of both generators (U-Net encoder with its
        attention, or the ResNet's stem and strided convolutions) keeps its pretrained features."""
        encoders = [getattr(net, name) for key in ("generator", "generator_inverse")
                    for net in [getattr(self.nets[key], "module", self.nets[key])]
                    for name in ENCODER_PARTS if isinstance(getattr(net, name, None), torch.nn.Module)]
        return {"encoder": encoders} if encoders else {}

    sample_rows = ("photo", "G(photo)", "anime", "F(anime)")

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
