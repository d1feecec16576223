"""The tiny plugin's training tasks: LSGAN + L1 on unpaired data (``tiny``), MSE to downsized images (``tinygen``).

``optim.explode_at`` / ``optim.interrupt_at`` make the loop's NaN stop and Ctrl-C paths testable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from anime_core.training import TrainingTask


class TinyTask(TrainingTask):
    def build(self, steps_per_epoch: int) -> None:
        self.nets = {"generator": self.build_net("generator"), "discriminator": self.build_net("discriminator")}
        lr = self.cfg.optim.lr
        self.optimizers = {k: self.adam(n.parameters(), lr) for k, n in self.nets.items()}
        self.adversarial = self.loss(self.cfg.loss.adversarial)
        self.calls = torch.zeros(())

    def step(self, batch, ctx):  # type: ignore[no-untyped-def]
        g, d = self.nets["generator"], self.nets["discriminator"]
        fake = g(batch["photo"])
        d_loss = self.adversarial.d_loss(d(batch["anime"]), d(fake.detach()))
        self.optimize("discriminator", d_loss, ctx)
        with self.frozen(d):
            g_loss = self.adversarial.g_loss(d(fake)) + self.cfg.loss.l1_weight * nn.functional.l1_loss(
                fake, batch["photo"]
            )
        self.optimize("generator", g_loss, ctx)
        self.calls += 1
        optim = self.cfg.optim
        if optim.explode_at and ctx.step + 1 >= optim.explode_at:
            g_loss = g_loss * float("nan")
        if optim.interrupt_at and ctx.step + 1 >= optim.interrupt_at:
            raise KeyboardInterrupt
        dump = os.environ.get("TINY_DUMP_DIR")
        if dump:  # the 2-process test compares every rank's final weights
            torch.save(self.nets["generator"].state_dict(), Path(dump) / f"rank{ctx.accelerator.process_index}.pt")
        return {"d": d_loss, "g": g_loss}

    def state_dict(self) -> dict:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.calls = state["calls"]


class TinyGenTask(TrainingTask):
    def build(self, steps_per_epoch: int) -> None:
        self.nets = {"generator": self.build_net("generator")}
        self.optimizers = {"generator": torch.optim.SGD(self.nets["generator"].parameters(), lr=0.01)}

    def step(self, batch, ctx):  # type: ignore[no-untyped-def]
        g = self.nets["generator"]
        z = torch.randn(batch["image"].size(0), 8, device=ctx.device)
        loss = nn.functional.mse_loss(g(z), nn.functional.interpolate(batch["image"], size=4))
        self.optimize("generator", loss, ctx)
        return {"mse": loss}

    def sample(self, batch):  # type: ignore[no-untyped-def]
        return self.nets["generator"](torch.randn(4, 8, device=batch["image"].device))
