"""Learning-rate schedules: built by the core from the shared ``schedule.*`` keys, over the run's real length.

A model whose schema has a ``schedule:`` section (:class:`~anime_core.schema.ScheduleConfig`) gets
one ``LambdaLR`` per optimizer from the loop (:meth:`~anime_core.training.task.TrainingTask.schedule`);
tasks build none of their own. The loop steps them once per optimizer step.

- ``schedule.decay: linear``: each rate stays constant, then falls linearly to zero at the run's
  last optimizer step; ``none``: constant rates.
- ``schedule.decay_start_epoch`` is read against ``train.epochs``: the decay starts after that
  share of the run. The run's length is its optimizer steps (:class:`~anime_core.training.loop.Plan`):
  ``train.max_steps`` when set, else ``train.epochs`` x the optimizer steps of an epoch (its
  batches per process // ``train.grad_accum``). Without ``train.max_steps`` the decay so starts
  exactly at epoch ``decay_start_epoch``; with it, the schedule keeps the recipe's proportions over
  the steps the run really takes (``anime train cyclegan train.max_steps=20000``: constant for 11,200
  steps, 140 of 250 epochs, then down to zero at step 20,000). Before, cyclegan decayed over
  ``train.epochs`` only, so a ``max_steps`` run ended before the decay began.

The recipes (values in each plugin's ``configs/*.yaml``):

- CycleGAN, Zhu et al., "Unpaired Image-to-Image Translation using Cycle-consistent Adversarial
  Networks" (ICCV 2017), section 4 (training details) and appendix 7.1: Adam at 2e-4, "the same
  learning rate for the first 100 epochs and linearly decay the rate to zero over the next 100
  epochs": ``decay_start_epoch: 100`` of ``epochs: 200``.
- ``cyclegan``: Sharma & Das, "A CycleGAN Framework for Anime Style Image Synthesis based on U-Net
  and Self-Attention", section 4.2: 250 epochs, the decay after epoch 140 (CycleGAN's linear form).
- ``dcgan``: Begum et al., "Anime face generating using deep learning", section 3.2.3 trains with a
  "decayed learning rate" without giving its form; the plugin decays linearly from epoch 25 of 50.
- ``pixelsake-sr``: linear from epoch 50 of 100, the plugin's choice (ESRGAN, section 4.1, halves
  its rate at fixed iterations instead).
- ``animegan`` (Liu et al., section 3.3) and ``ae`` (Abbas et al., Table III) use constant rates:
  their schemas have no ``schedule:`` section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from anime_core.config import declares
from anime_core.ops import linear_decay

if TYPE_CHECKING:
    from anime_core.schema import RunConfig


def decay_start(cfg: RunConfig, total_steps: int) -> int:
    """The optimizer step where the linear decay begins: ``decay_start_epoch / epochs`` of ``total_steps``."""
    schedule: Any = cfg.schedule  # type: ignore[attr-defined]
    return total_steps * schedule.decay_start_epoch // cfg.train.epochs


def lr_schedulers(
    cfg: RunConfig, optimizers: dict[str, torch.optim.Optimizer], total_steps: int
) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
    """One ``LambdaLR`` per optimizer for ``schedule.decay: linear`` over ``total_steps``; none otherwise."""
    if not declares(cfg, "schedule") or cfg.schedule.decay == "none":  # type: ignore[attr-defined]
        return {}
    factor = linear_decay(total_steps, decay_start(cfg, total_steps))
    return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}
