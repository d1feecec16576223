"""Weight initialisation N(0, 0.02) (paper 4.2, Table 1; the CycleGAN/pix2pix ``normal`` init).

The paper's "standard normal distribution from the range of 0 and 0.2" is read as mean 0 and
standard deviation 0.02, the value of the CycleGAN code it builds on. Convolution weights are
drawn from it and biases set to 0; the attention ``gamma`` keeps its 0 so attention starts as
the identity.
"""

from __future__ import annotations

from torch import nn


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Initialise every (transposed) convolution of ``module`` in place; returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
