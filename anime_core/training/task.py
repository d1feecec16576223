"""The contract between a model plugin and the core training loop.

A plugin subclasses :class:`TrainingTask` and says *what* one training step is: which nets,
which optimizers and schedulers, which phases, which losses with which weights. The loop in
:mod:`anime_core.training.loop` owns everything else: devices, mixed precision, gradient
accumulation, data loading, logging, samples, checkpoints, resume and export.

Rules for a task:
- ``build(steps_per_epoch)`` fills ``self.nets``, ``self.optimizers`` and (optionally)
  ``self.schedulers``. Scheduler lambdas count optimizer steps; the loop calls ``.step()`` on
  every scheduler once per completed optimizer step.
- After ``build`` the loop replaces the entries of ``self.nets``/``self.optimizers`` by their
  Accelerate-prepared versions, so always reach them through those dicts.
- ``step`` does forward passes, ``ctx.accelerator.backward(loss)``, ``optimizer.step()`` and
  ``zero_grad()``, and returns scalar logs. Gradient accumulation works unchanged because the
  loop runs ``step`` inside ``accelerator.accumulate``. The loop clears every net's gradients
  at the start of each accumulation window, so gradients a generator loss leaves on the
  discriminator never leak into the next step (and a resumed run matches an unbroken one).
- Randomness comes from ``torch`` global RNG (seeded and checkpointed by the loop) so resume is exact;
  extra state (e.g. an image history pool) goes in ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from anime_core.errors import UsageError

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.utils.data import Dataset

    from anime_core.registry import Registry


@dataclass
class StepContext:
    """What the loop tells a task about the current step."""

    accelerator: Accelerator
    step: int  # index of the optimizer step being computed (0-based, global)
    epoch: int
    steps_per_epoch: int

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


class TrainingTask(ABC):
    """Base class of a model's training recipe (see the module docstring for the rules)."""

    #: the nets written to the exported weights file, by key of ``self.nets``
    export_parts: tuple[str, ...] = ("generator",)

    def __init__(self, config: dict[str, Any], registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def build(self, steps_per_epoch: int) -> None:
        """Create ``self.nets``, ``self.optimizers`` and optionally ``self.schedulers``."""

    @abstractmethod
    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        """One optimizer step on ``batch``; return the losses to log by name."""

    # -- optional ---------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        """The training dataset; by default the model's registered dataset kind (``data.kind``)."""
        kind = self.config.get("data", {}).get("kind")
        if not kind:
            raise UsageError(
                f"{type(self).__name__}'s config sets no data.kind and the task does not override dataset()"
            )
        return self.registry.dataset(kind).build(self.config, train=True)

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images in [-1, 1] (N, 3, H, W) for the periodic sample grid; default: inputs above outputs."""
        gen = self.nets["generator"]
        x = batch.get("photo", batch.get("image"))
        y = gen(x)
        return torch.cat([x, y.to(x.dtype)], dim=0)

    def generator_config(self) -> dict[str, Any]:
        """Generator options recorded in the exported weights, so ``anime run --weights`` rebuilds it."""
        return dict(self.config.get("generator", {}))

    def state_dict(self) -> dict[str, Any]:
        """Extra task state to checkpoint (history pools, counters); tensors only where possible."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (nothing by default)."""
        del state
