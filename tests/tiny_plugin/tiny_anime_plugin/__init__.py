"""A throwaway plugin for the core's tests: two tiny models through the real hooks.

``tiny`` (translate): a 3-layer local conv net (receptive field radius 3, no global norms, so
tiled and untiled outputs agree away from seams) trained with LSGAN + L1 on unpaired data.
``tinygen`` (generate): a 2-layer transposed-conv generator from an 8-d latent.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from anime_core import hookimpl
from anime_core.losses import LSGANLoss
from anime_core.specs import (
    DiscriminatorSpec,
    GeneratorSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
    WeightsSource,
)
from anime_core.training import TrainingTask

HERE = Path(__file__).parent


class TinyGenerator(nn.Module):
    stride = 2

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="reflect"),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 3, 3, padding=1, padding_mode="reflect"),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyDiscriminator(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyGen(nn.Module):
    latent_dim = 8

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(8, width, 4, 1, 0), nn.ReLU(), nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.view(z.size(0), -1, 1, 1))


class TinyTask(TrainingTask):
    def build(self, steps_per_epoch: int) -> None:
        from anime_core.api import build_part

        spec = self.registry.model("tiny")
        self.nets = {
            "generator": build_part(spec, "generator", self.registry, **self.config["generator"]),
            "discriminator": build_part(spec, "discriminator", self.registry),
        }
        lr = float(self.config["optim"]["lr"])
        self.optimizers = {k: torch.optim.Adam(n.parameters(), lr=lr, betas=(0.5, 0.999)) for k, n in self.nets.items()}
        decay = lambda step: max(0.0, 1.0 - step / (100 * steps_per_epoch))  # noqa: E731
        self.schedulers = {"generator": torch.optim.lr_scheduler.LambdaLR(self.optimizers["generator"], decay)}
        self.calls = torch.zeros(())

    def step(self, batch, ctx):  # type: ignore[no-untyped-def]
        g, d = self.nets["generator"], self.nets["discriminator"]
        og, od = self.optimizers["generator"], self.optimizers["discriminator"]
        adv = LSGANLoss()
        fake = g(batch["photo"])
        d_loss = adv.d_loss(d(batch["anime"]), d(fake.detach()))
        ctx.accelerator.backward(d_loss)
        od.step()
        od.zero_grad()
        g_loss = adv.g_loss(d(fake)) + 10 * nn.functional.l1_loss(fake, batch["photo"])
        ctx.accelerator.backward(g_loss)
        og.step()
        og.zero_grad()
        self.calls += 1
        optim = self.config["optim"]
        if optim["explode_at"] and ctx.step + 1 >= optim["explode_at"]:
            g_loss = g_loss * float("nan")
        if optim["interrupt_at"] and ctx.step + 1 >= optim["interrupt_at"]:
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
        self.nets = {"generator": TinyGen()}
        self.optimizers = {"generator": torch.optim.SGD(self.nets["generator"].parameters(), lr=0.01)}

    def step(self, batch, ctx):  # type: ignore[no-untyped-def]
        g = self.nets["generator"]
        z = torch.randn(batch["image"].size(0), 8, device=ctx.device)
        loss = nn.functional.mse_loss(g(z), nn.functional.interpolate(batch["image"], size=4))
        ctx.accelerator.backward(loss)
        self.optimizers["generator"].step()
        self.optimizers["generator"].zero_grad()
        return {"mse": loss}

    def sample(self, batch):  # type: ignore[no-untyped-def]
        return self.nets["generator"](torch.randn(4, 8, device=batch["image"].device))


def _foreign_matches(state) -> bool:  # type: ignore[no-untyped-def]
    return any(k.startswith("legacy.") for k in state)


def _foreign_convert(state):  # type: ignore[no-untyped-def]
    width = int(state["legacy.0.weight"].shape[0])
    return {k.replace("legacy.", "body.", 1): v for k, v in state.items()}, {"width": width}


@hookimpl
def anime_register_generators():  # type: ignore[no-untyped-def]
    return [GeneratorSpec("tiny.g", TinyGenerator, "3-layer local conv net"), GeneratorSpec("tinygen.g", TinyGen)]


@hookimpl
def anime_register_discriminators():  # type: ignore[no-untyped-def]
    return [DiscriminatorSpec("tiny.d", TinyDiscriminator)]


@hookimpl
def anime_register_models():  # type: ignore[no-untyped-def]
    return [
        ModelSpec(
            "tiny",
            "translate",
            "tiny.g",
            "tiny.d",
            task=TinyTask,
            config=HERE / "configs" / "tiny.yaml",
            presets={"wide": HERE / "configs" / "wide.yaml"},
            dataset="unpaired",
            paper="test fixture",
            description="tiny translate model for tests",
        ),
        ModelSpec(
            "tinygen",
            "generate",
            "tinygen.g",
            task=TinyGenTask,
            config=HERE / "configs" / "tinygen.yaml",
            description="tiny generate model for tests",
        ),
    ]


@hookimpl
def anime_register_styles():  # type: ignore[no-untyped-def]
    url = os.environ.get("TINY_STYLE_URL", "http://127.0.0.1:9/tiny-style.safetensors")
    sha = os.environ.get("TINY_STYLE_SHA256", "0" * 64)
    return [
        StyleSpec(
            "tiny",
            "demo",
            WeightsSource(url, sha256=sha, filename="tiny-style.safetensors"),
            preprocess={"size": 24},
            license="test only",
        )
    ]


@hookimpl
def anime_weights_converters():  # type: ignore[no-untyped-def]
    return [WeightsConverter("tiny.legacy", "tiny", _foreign_matches, _foreign_convert, "legacy.* keys")]
