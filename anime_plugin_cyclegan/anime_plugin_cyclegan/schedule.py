"""Learning-rate schedule (paper 4.2, Table 1): constant, then linear decay to 0.

The paper trains 250 epochs and "invoked a learning rate decay after 140 epochs"; like CycleGAN
the decay is linear, here reaching 0 at the last epoch: the factor is
``1 - max(0, e - decay_start) / (epochs - decay_start)`` with ``e = step / steps_per_epoch``
(epochs 0 and 140 -> 1, 195 -> 0.5, 250 -> 0). It is expressed in optimizer steps because the
core loop steps schedulers once per optimizer step, so the decay is smooth within an epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def linear_decay(epochs: int = 250, decay_start: int = 140, steps_per_epoch: int = 1) -> Callable[[int], float]:
    """The LambdaLR factor as a function of the optimizer step."""
    if not 0 <= decay_start < epochs:
        from anime_core.errors import ConfigError

        raise ConfigError(f"optim.decay_start_epoch ({decay_start}) must be below train.epochs ({epochs})")
    span = float(epochs - decay_start)

    def factor(step: int) -> float:
        epoch = step / max(1, steps_per_epoch)
        return max(0.0, 1.0 - max(0.0, epoch - decay_start) / span)

    return factor


def linear_decay_scheduler(
    optimizer: torch.optim.Optimizer, epochs: int, decay_start: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(epochs, decay_start, steps_per_epoch))
