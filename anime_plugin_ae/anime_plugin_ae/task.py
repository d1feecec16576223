"""Paired autoencoder training (paper II.D, Table III, Fig. 6).

One step: photo -> network input (the L* channel normalised to [-1, 1] for the Lab variants, RGB
for ``rgb``), predict the anime image's chroma a*b* / 128 (or RGB), MSE loss (+ ``kl_weight`` x KL
for ``vae``), Adam(lr 1e-3, Keras' default betas). Batch 32 and 10 epochs are the YAML defaults.

Per-epoch report (Fig. 6 lists ``loss`` and ``val_loss`` per epoch, Table V PSNR): the training
MSE/PSNR averaged over the epoch's steps and the validation MSE/PSNR on the held-out pairs, plus
the PSNR of the grayscale baseline (the photo's lightness with zero chroma) for reference. The
core's :class:`TrainingTask` has no epoch-end hook, so ``step`` detects the end of an epoch
itself: after the optimizer step whose index ``ctx.step + 1`` is a multiple of
``ctx.steps_per_epoch`` (or is the run's last step) it validates, logs the numbers with the
step's losses (``val_mse``, ``val_psnr`` ...), appends a row to ``<run dir>/validation.csv`` and
prints it. II.D "a checkpoint callback is implemented to save the best-performing model": when
the validation MSE improves, the generator is written to ``<run dir>/best.safetensors`` (native
weights, ``anime run ae --weights run/best.safetensors``) and kept in ``best_state``; the loop
still exports the last generator to ``generator.safetensors``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from anime_core import config as cfglib
from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_ae.color import AB_SCALE, compose, rgb_to_lab, rgb_to_lightness
from anime_plugin_ae.data import build_datasets
from anime_plugin_ae.losses import GaussianKL, psnr

BEST_NAME = "best.safetensors"
HISTORY_NAME = "validation.csv"


class AETask(TrainingTask):
    """MSE autoencoder training with per-epoch validation and a best-validation checkpoint."""

    val_set: Dataset | None = None

    # -- data ---------------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        train_set, self.val_set = build_datasets(self.config)
        return train_set

    def build(self, steps_per_epoch: int) -> None:
        from anime_core.api import build_part

        gen = build_part(self.registry.model("ae"), "generator", self.registry, **dict(self.config["generator"]))
        betas = (float(cfglib.get(self.config, "optim.beta1")), float(cfglib.get(self.config, "optim.beta2")))
        self.nets = {"generator": gen}
        self.optimizers = {
            "generator": torch.optim.Adam(gen.parameters(), lr=float(cfglib.get(self.config, "optim.lr")), betas=betas)
        }
        self.lab = gen.in_channels == 1
        self.kl = GaussianKL()
        self.kl_weight = float(cfglib.get(self.config, "loss.kl_weight", 0.0))
        self.steps_per_epoch = steps_per_epoch
        max_steps = cfglib.get(self.config, "train.max_steps")
        self.max_steps = int(max_steps or int(cfglib.get(self.config, "train.epochs", 1)) * steps_per_epoch)
        self.best_val = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self._sums = torch.zeros(3, dtype=torch.float64)  # mse, psnr, steps of the running epoch

    # -- tensors ------------------------------------------------------------------------------
    def inputs_targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Network input and regression target of a {"photo", "anime"} batch in [-1, 1]."""
        if not self.lab:
            return batch["photo"], batch["anime"].float()
        photo, anime = (batch["photo"].float() + 1) / 2, (batch["anime"].float() + 1) / 2
        return rgb_to_lightness(photo), rgb_to_lab(anime)[:, 1:] / AB_SCALE

    def to_rgb(self, pred: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Network output (and its input) -> RGB in [0, 1]: Lab(input L, predicted a*b*) or the RGB output."""
        return compose(x, pred) if self.lab else ((pred.float() + 1) / 2).clamp(0, 1)

    # -- training -----------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        gen, opt = self.nets["generator"], self.optimizers["generator"]
        x, y = self.inputs_targets(batch)
        out = gen(x, return_posterior=True)
        mse = F.mse_loss(out.image.float(), y)
        logs: dict[str, float | torch.Tensor] = {"mse": mse.detach()}
        loss = mse
        if out.logvar is not None:
            kl = self.kl(out.mu, out.logvar)
            loss = loss + self.kl_weight * kl
            logs["kl"] = kl.detach()
        ctx.accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            logs["psnr"] = psnr(self.to_rgb(out.image.detach(), x), (batch["anime"].float() + 1) / 2).mean()
        if not ctx.accelerator.sync_gradients:  # inside a gradient-accumulation window
            return logs
        self._sums += torch.tensor([float(logs["mse"]), float(logs["psnr"]), 1.0], dtype=torch.float64)
        done = ctx.step + 1
        if done % ctx.steps_per_epoch == 0 or done == self.max_steps:
            logs.update(self.end_epoch(ctx))
        return logs

    def end_epoch(self, ctx: StepContext) -> dict[str, float]:
        """Epoch-end report: training means, validation metrics, best checkpoint (see the module docstring)."""
        mse_sum, psnr_sum, n = self._sums.tolist()
        self._sums.zero_()
        row = {"epoch": float(ctx.epoch), "step": float(ctx.step + 1), "train_mse": mse_sum / max(n, 1),
               "train_psnr": psnr_sum / max(n, 1)}
        if self.val_set is not None and len(self.val_set) > 0:
            row.update(self.validate(ctx))
            if row["val_mse"] < self.best_val:
                self.best_val, self.best_epoch = row["val_mse"], ctx.epoch
                self._save_best(ctx, row)
            row["best_val_mse"] = self.best_val
        self.history.append(row)
        self._report(ctx, row)
        return {k: v for k, v in row.items() if k not in ("epoch", "step")}

    @torch.no_grad()
    def validate(self, ctx: StepContext) -> dict[str, float]:
        """MSE and PSNR on the validation pairs (every process computes the same numbers)."""
        gen = ctx.accelerator.unwrap_model(self.nets["generator"])
        was_training = gen.training
        gen.eval()
        bs = int(cfglib.get(self.config, "train.batch_size"))
        sq, count, psnrs, gray = 0.0, 0, [], []
        try:
            for batch in DataLoader(self.val_set, batch_size=bs, shuffle=False):
                batch = {k: v.to(ctx.device) for k, v in batch.items()}
                x, y = self.inputs_targets(batch)
                with ctx.accelerator.autocast():
                    pred = gen(x)
                sq += float(F.mse_loss(pred.float(), y, reduction="sum"))
                count += y.numel()
                target = (batch["anime"].float() + 1) / 2
                psnrs.append(psnr(self.to_rgb(pred, x), target))
                light = rgb_to_lightness((batch["photo"].float() + 1) / 2)
                gray.append(psnr(compose(light, torch.zeros_like(light).expand(-1, 2, -1, -1)), target))
        finally:
            gen.train(was_training)
        return {"val_mse": sq / count, "val_psnr": float(torch.cat(psnrs).mean()),
                "val_psnr_gray": float(torch.cat(gray).mean())}

    def _run_dir(self) -> Path | None:
        out = self.config.get("output_dir")
        return Path(out) if out else None

    def _save_best(self, ctx: StepContext, row: dict[str, float]) -> None:
        from anime_core.weights.files import save_native

        gen = ctx.accelerator.unwrap_model(self.nets["generator"])
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in gen.state_dict().items()}
        run_dir = self._run_dir()
        if run_dir is not None and ctx.accelerator.is_main_process:
            extra = {"epoch": int(row["epoch"]), "step": int(row["step"]), "val_mse": row["val_mse"],
                     "val_psnr": row["val_psnr"]}
            save_native(run_dir / BEST_NAME, {"generator": self.best_state}, "ae", self.generator_config(), extra)

    def _report(self, ctx: StepContext, row: dict[str, float]) -> None:
        text = " ".join(f"{k}={v:.5g}" for k, v in row.items() if k not in ("epoch", "step"))
        ctx.accelerator.print(f"epoch {int(row['epoch'])} (step {int(row['step'])}): {text}")
        run_dir = self._run_dir()
        if run_dir is None or not ctx.accelerator.is_main_process:
            return
        path = run_dir / HISTORY_NAME
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: (int(v) if k in ("epoch", "step") else v) for k, v in row.items()})

    # -- samples and resume -------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rows of photos, outputs and anime targets in [-1, 1]."""
        x, _ = self.inputs_targets(batch)
        rgb = self.to_rgb(self.nets["generator"](x), x)
        return torch.cat([batch["photo"].float(), rgb * 2 - 1, batch["anime"].float()])

    def state_dict(self) -> dict[str, Any]:
        return {"best_val": torch.tensor(self.best_val, dtype=torch.float64),
                "best_epoch": torch.tensor(self.best_epoch), "epoch_sums": self._sums.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val = float(state["best_val"])
        self.best_epoch = int(state["best_epoch"])
        self._sums = state["epoch_sums"].to(torch.float64).clone()
