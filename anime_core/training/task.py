"""The contract between a model plugin and the core training loop.

A plugin subclasses :class:`TrainingTask` and says *what* one training step is: which nets,
which optimizers and schedulers, which phases, which losses with which weights. The loop in
:mod:`anime_core.training.loop` owns everything else: devices, mixed precision, gradient
accumulation, data loading, logging, samples, checkpoints, resume and export.

A task builds through the registry, by the names its spec and config give: nets with
:meth:`TrainingTask.build_net` (the model's registered builders and ``generator:``/
``discriminator:`` options), losses with :meth:`TrainingTask.loss` (``loss.adversarial`` names a
registered adversarial loss), the dataset with :meth:`TrainingTask.dataset` (``ModelSpec.dataset``).
It reads the typed run config as ``self.cfg`` (``self.cfg.optim.lr_g``; see :mod:`anime_core.schema`).

Rules for a task:
- ``build(steps_per_epoch)`` fills ``self.nets`` and ``self.optimizers``. Learning-rate schedules
  are the core's: after ``build`` the loop calls :meth:`TrainingTask.schedule`, which builds them
  from the config's ``schedule:`` section over the run's optimizer steps
  (:mod:`anime_core.training.schedule`), and steps them once per completed optimizer step.
- After ``build`` the loop replaces the entries of ``self.nets``/``self.optimizers`` by their
  Accelerate-prepared versions, so always reach them through those dicts.
- ``step`` does forward passes and one :meth:`TrainingTask.optimize` per optimizer (backward,
  step, zero_grad), and returns scalar logs; :meth:`TrainingTask.frozen` keeps a net out of the
  other net's backward pass. Gradient accumulation works unchanged because the
  loop runs ``step`` inside ``accelerator.accumulate``. The loop clears every net's gradients
  at the start of each accumulation window, so gradients a generator loss leaves on the
  discriminator never leak into the next step (and a resumed run matches an unbroken one).
- Randomness comes from ``torch`` global RNG (seeded and checkpointed by the loop) so resume is exact;
  extra state (e.g. an image history pool) goes in ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from anime_core.config import net_options
from anime_core.errors import UsageError

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.utils.data import Dataset

    from anime_core.registry import Registry
    from anime_core.schema import RunConfig
    from anime_core.specs import ModelSpec


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
    #: config values of a run that starts from pretrained weights (``--init``), unless the user set
    #: them, e.g. ``{"train.init_epochs": 0}``: no generator warm-up for weights that are trained already
    finetune_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: ModelSpec, config: RunConfig, registry: Registry) -> None:
        if isinstance(config, Mapping):
            raise TypeError("a TrainingTask takes the typed run config: anime_core.config.resolve(spec, ...)")
        self.spec = spec
        self.registry = registry
        #: the run config, typed by the model's schema (``self.cfg.train.batch_size``)
        self.cfg: Any = config
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # -- to implement ---------------------------------------------------------------------
    @abstractmethod
    def build(self, steps_per_epoch: int) -> None:
        """Create ``self.nets`` and ``self.optimizers`` (the loop adds the schedulers: :meth:`schedule`)."""

    @abstractmethod
    def step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, float | torch.Tensor]:
        """One optimizer step on ``batch``; return the losses to log by name."""

    # -- optional ---------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, ctx: StepContext) -> dict[str, float] | None:
        """Called by the loop after the last optimizer step of each epoch (validation, best model...).

        Values returned are logged like step logs. Nothing by default.
        """
        del epoch, ctx
        return None

    def required_weights(self) -> list[str]:
        """Backbone weights keys (``backbone:vgg19``) this run needs; fetched before any data is prepared."""
        return []

    def dataset(self) -> Dataset:
        """The training dataset: the registered dataset kind the model names (``ModelSpec.dataset``)."""
        if not self.spec.dataset:
            raise UsageError(f"model '{self.spec.name}' names no dataset kind and its task does not override dataset()")
        return self.registry.dataset(self.spec.dataset).builder()(self.cfg, train=True)

    @torch.no_grad()
    def sample(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images in [-1, 1] (N, 3, H, W) for the periodic sample grid; default: inputs above outputs."""
        gen = self.nets["generator"]
        x = batch.get("photo", batch.get("image"))
        y = gen(x)
        return torch.cat([x, y.to(x.dtype)], dim=0)

    def freezable(self) -> dict[str, list[nn.Module]]:
        """Parts ``train.freeze`` may name (``{"encoder": [...]}``), read after :meth:`build`; none by default.

        A frozen part gets no gradients and is left out of every optimizer (fine-tuning, ``--init``).
        """
        return {}

    def generator_config(self) -> dict[str, Any]:
        """Generator options recorded in the exported weights, so ``anime run --weights`` rebuilds it."""
        return net_options(self.cfg, "generator")

    def state_dict(self) -> dict[str, Any]:
        """Extra task state to checkpoint (history pools, counters); tensors only where possible."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (nothing by default)."""
        del state

    # -- the common moves, once -------------------------------------------------------------
    def schedule(self, total_steps: int) -> None:
        """The learning-rate schedules of ``schedule.*`` over the run's ``total_steps`` optimizer steps.

        Called by the loop after :meth:`build` (:mod:`anime_core.training.schedule`); a task builds none.
        """
        from anime_core.training.schedule import lr_schedulers

        if self.schedulers:
            raise UsageError(
                f"the training task of '{self.spec.name}' built its own schedulers; the core builds them from the "
                f"config's schedule: section (schedule.decay, schedule.decay_start_epoch)"
            )
        self.schedulers = lr_schedulers(self.cfg, self.optimizers, total_steps)


    def build_net(self, part: str = "generator", **overrides: Any) -> nn.Module:
        """The model's ``generator`` or ``discriminator`` with this run's config section (+ ``overrides``)."""
        options = net_options(self.cfg, "generator" if part == "generator" else "discriminator")
        options.update(overrides)
        return self.registry.build(self.spec, part, **options)

    def loss(self, name: str, **options: Any) -> nn.Module:
        """A registered loss by name (``self.loss(self.cfg.loss.adversarial)``, ``self.loss("cycle_l1")``)."""
        from anime_core.registry import call_builder

        return call_builder("loss", name, self.registry.loss(name).builder(), options)

    def adam(self, params: Iterable[Any], lr: float) -> torch.optim.Adam:
        """Adam with this run's ``optim.betas``."""
        betas = tuple(self.cfg.optim.betas)
        return torch.optim.Adam(params, lr=lr, betas=betas)  # type: ignore[arg-type]

    @staticmethod
    @contextmanager
    def frozen(*nets: nn.Module) -> Iterator[None]:
        """Inside, ``nets`` get no gradients (a discriminator during the generator's step).

        A net wrapped for several processes (DistributedDataParallel) is also kept out of gradient
        synchronisation (``no_sync``): its reducer would otherwise wait for the gradients of the
        frozen parameters and fail at the next step.
        """
        params = [p for net in nets for p in net.parameters()]
        before = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            with ExitStack() as stack:
                for net in nets:
                    if isinstance(net, torch.nn.parallel.DistributedDataParallel):
                        stack.enter_context(net.no_sync())
                yield
        finally:
            for p, flag in zip(params, before):
                p.requires_grad_(flag)

    def optimize(self, name: str, loss: torch.Tensor, ctx: StepContext) -> None:
        """Back-propagate ``loss`` (through Accelerate: scaling, accumulation) and step optimizer ``name``."""
        opt = self.optimizers[name]
        ctx.accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
