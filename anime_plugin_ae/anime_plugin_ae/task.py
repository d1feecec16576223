"""Paired autoencoder training of S. Abbas et al., "Ordinary to Anime: An Artistic & Technical
Inquiry using Auto Encoders", section II.D, Table III and Fig. 6.

One step: photo -> network input (the L* channel normalised to [-1, 1] for the Lab variants, RGB
for ``rgb``), predict the anime image's chroma a*b* / 128 (or RGB), MSE loss (+ ``loss.kl_weight``
x the registered loss ``ae.kl`` for ``vae``), Adam (``optim.lr_g`` 1e-3, Keras' default betas).
Batch 32 and 10 epochs are the YAML defaults.

Per-epoch report (Fig. 6 lists ``loss`` and ``val_loss`` per epoch, Table V PSNR), in
:meth:`AETask.on_epoch_end`: the training MSE/PSNR averaged over the epoch's steps and the
validation MSE/PSNR on the held-out pairs, plus the PSNR of the grayscale baseline (the photo's
lightness with zero chroma) for reference. The loop logs them (``val_mse``, ``val_psnr`` ...);
the task also appends a row to ``<run dir>/validation.csv`` and prints it. Section II.D, "a
checkpoint callback is implemented to save the best-performing model": when the validation MSE
improves, the generator is written to ``<run dir>/best.safetensors`` (native weights,
``anime run ae --weights run/best.safetensors``); the loop still exports the last generator to
``generator.safetensors``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from anime_core.ops import psnr
from anime_core.training import TrainingTask
from anime_core.training.task import StepContext
from anime_plugin_ae.color import AB_SCALE, compose, rgb_to_lab, rgb_to_lightness

BEST_NAME = "best.safetensors"
HISTORY_NAME = "validation.csv"


class AETask(TrainingTask):
    """MSE autoencoder training with per-epoch validation and a best-validation checkpoint."""

    val_set: Dataset | None = None

    # -- data ---------------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        """The training pairs of the model's dataset kind; its validation pairs are kept for the epoch ends."""
        self.val_set = self.registry.dataset(self.spec.dataset).builder()(self.cfg, train=False)
        return super().dataset()

    def build(self, steps_per_epoch: int) -> None:
        del steps_per_epoch  # epoch ends come from the loop (on_epoch_end)
        gen = self.build_net("generator")
        self.nets = {"generator": gen}
        self.optimizers = {"generator": self.adam(gen.parameters(), self.cfg.optim.lr_g)}
        self.lab = gen.in_channels == 1
        self.kl = self.loss("ae.kl")
        self.best_val = math.inf
        self.best_epoch = -1
        self._sums = torch.zeros(3, dtype=torch.float64)  # mse, psnr, steps of the running epoch

    def freezable(self) -> dict[str, list[torch.nn.Module]]:
        """``train.freeze=encoder``: the encoder levels and the encoding layer (and the VAE's posterior
        head), so fine-tuning on a new style retrains only the decoder."""
        gen = getattr(self.nets["generator"], "module", self.nets["generator"])
        parts = [gen.encoder, gen.encoding] + ([gen.to_mu, gen.to_logvar] if gen.variational else [])
        return {"encoder": parts}

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
        x, y = self.inputs_targets(batch)
        out = self.nets["generator"](x, return_posterior=True)
        mse = F.mse_loss(out.image.float(), y)
        logs: dict[str, float | torch.Tensor] = {"mse": mse.detach()}
        loss = mse
        if out.logvar is not None:
            kl = self.kl(out.mu, out.logvar)
            loss = loss + self.cfg.loss.kl_weight * kl
            logs["kl"] = kl.detach()
        self.optimize("generator", loss, ctx)
        with torch.no_grad():
            logs["psnr"] = psnr(self.to_rgb(out.image.detach(), x), (batch["anime"].float() + 1) / 2).mean()
        if ctx.accelerator.sync_gradients:  # an optimizer step, not a batch inside an accumulation window
            self._sums += torch.tensor([float(logs["mse"]), float(logs["psnr"]), 1.0], dtype=torch.float64)
        return logs

    def on_epoch_end(self, epoch: int, ctx: StepContext) -> dict[str, float]:
        """Epoch-end report: training means, validation metrics, best checkpoint (see the module docstring)."""
        mse_sum, psnr_sum, n = self._sums.tolist()
        self._sums.zero_()
        row = {"epoch": float(epoch), "step": float(ctx.step + 1), "train_mse": mse_sum / max(n, 1),
               "train_psnr": psnr_sum / max(n, 1)}
        if self.val_set is not None and len(self.val_set) > 0:
            row.update(self.validate(ctx))
            if row["val_mse"] < self.best_val:
                self.best_val, self.best_epoch = row["val_mse"], epoch
                self._save_best(ctx, row)
            row["best_val_mse"] = self.best_val
        self._report(ctx, row)
        return {k: v for k, v in row.items() if k not in ("epoch", "step")}

    @torch.no_grad()
    def validate(self, ctx: StepContext) -> dict[str, float]:
        """MSE and PSNR on the validation pairs (every process computes the same numbers)."""
        gen = ctx.accelerator.unwrap_model(self.nets["generator"])
        was_training = gen.training
        gen.eval()
        sq, count, psnrs, gray = 0.0, 0, [], []
        try:
            for batch in DataLoader(self.val_set, batch_size=self.cfg.train.batch_size, shuffle=False):
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
        return Path(self.cfg.output_dir) if self.cfg.output_dir else None

    def _save_best(self, ctx: StepContext, row: dict[str, float]) -> None:
        from anime_core.weights.files import save_native

        run_dir = self._run_dir()
        if run_dir is None or not ctx.accelerator.is_main_process:
            return
        gen = ctx.accelerator.unwrap_model(self.nets["generator"])
        state = {k: v.detach().to("cpu", copy=True) for k, v in gen.state_dict().items()}
        extra = {"epoch": int(row["epoch"]), "step": int(row["step"]), "val_mse": row["val_mse"],
                 "val_psnr": row["val_psnr"]}
        save_native(run_dir / BEST_NAME, {"generator": state}, self.spec.name, self.generator_config(), extra)

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
    sample_rows = ("photo", "output", "anime")

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
