"""Small maths every plugin shares: PSNR, the linear learning-rate decay, the N(0, 0.02) init.

One copy each, used by the paper plugins and the metrics (issue "One wiring for every plugin").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, shape (N,), of images whose values span ``data_range``: the one PSNR of the project.

    ``data_range`` is 1 for [0, 1] images and 2 for [-1, 1]; ``pred`` is clamped to the range
    (centred on 0 for 2, starting at 0 for 1). Computed in float64 for float64 inputs, else in
    float32. **Identical images give +inf dB**, as torchmetrics' ``peak_signal_noise_ratio`` (which
    ``anime eval`` used before) and scikit-image do: no floor on the error, so a mean over images
    that holds one exact copy is +inf rather than a number that depends on an arbitrary floor.
    """
    dtype = torch.promote_types(pred.dtype, torch.float32) if pred.is_floating_point() else torch.float32
    low = -data_range / 2 if data_range == 2.0 else 0.0
    pred = pred.to(dtype).clamp(low, low + data_range)
    mse = (pred - target.to(dtype)).square().flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def linear_decay(total_steps: int, decay_start_step: int) -> Callable[[int], float]:
    """A ``LambdaLR`` factor: 1 until ``decay_start_step``, then linearly down to 0 at ``total_steps``.

    The CycleGAN schedule (Zhu et al., "Unpaired image-to-image translation using cycle-consistent
    adversarial networks", section 4: constant, then linear decay to zero), used per optimizer step
    so the decay is smooth within an epoch.
    """
    begin = max(0, int(decay_start_step))
    span = max(1, int(total_steps) - begin)
    return lambda step: 1.0 if step < begin else max(0.0, 1.0 - (step - begin) / span)


def normal_init(module: nn.Module, std: float = 0.02) -> nn.Module:
    """N(0, ``std``) weights and zero biases for every (transposed) convolution, linear and embedding
    layer; N(1, ``std``) scales for batch norms. In place; returns ``module``.

    The DCGAN initialisation (Radford et al., "Unsupervised representation learning with deep
    convolutional generative adversarial networks", section 4), also the CycleGAN code's ``normal``.
    Spectral-normalised weights are initialised through their original tensor.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(_raw_weight(m), 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def _raw_weight(m: nn.Module) -> torch.Tensor:
    """The trainable weight tensor, under ``torch.nn.utils.spectral_norm`` or its parametrization too."""
    if hasattr(m, "weight_orig"):
        return m.weight_orig
    if hasattr(m, "parametrizations") and hasattr(m.parametrizations, "weight"):
        return m.parametrizations.weight.original
    return m.weight
