"""Initial weights of AnimeGAN's nets as the authors' TensorFlow code draws them (``train.weight_init``).

The paper (G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation",
section 3.3) names no initialisation; the official code does:

- v1 generator (TachibanaYoshino/AnimeGAN, ``net/generator.py``): ``tf.contrib.layers`` convolutions
  and separable convolutions with their default ``xavier_initializer()`` (Glorot uniform), except
  the depthwise convolution of the inverted residual blocks, drawn from a normal distribution of
  standard deviation 0.02 truncated at two deviations (``dwise_conv``);
- v2 generator (TachibanaYoshino/AnimeGANv2, ``net/generator.py``): every convolution, depthwise
  included, from ``variance_scaling_initializer()``, He initialisation: a normal distribution of
  standard deviation sqrt(1.3 * 2 / fan_in) truncated at two deviations (the 1.3 makes up for the
  truncation);
- discriminator (``tools/ops.py`` of both): N(0, 0.02) on every convolution (before spectral norm).

Fans are computed as TensorFlow does from its kernel shape ``[kh, kw, in, out]``: a depthwise
kernel ``[kh, kw, channels, 1]`` has fan_in ``kh * kw * channels`` (PyTorch would say ``kh * kw``).
Biases start at zero and normalisation layers at scale 1, offset 0 (PyTorch's defaults too).

``weight_init``: ``official`` (default) as above for the variant; ``he`` the v2 rule for either
generator; ``pytorch`` leaves PyTorch's default initialisation (Kaiming uniform with a = sqrt(5)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from anime_core.ops import normal_init
from anime_plugin_animegan.generator import InvertedResidual

CHOICES = ("official", "he", "pytorch")


def tf_fans(conv: nn.Conv2d) -> tuple[int, int]:
    """(fan_in, fan_out) of a PyTorch convolution as TensorFlow computes them for the same kernel."""
    out_channels, in_per_group, kh, kw = conv.weight.shape
    return kh * kw * in_per_group * conv.groups, kh * kw * (out_channels // conv.groups)


@torch.no_grad()
def xavier_uniform_tf(conv: nn.Conv2d) -> None:
    """``tf.contrib.layers.xavier_initializer()``: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = tf_fans(conv)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    conv.weight.uniform_(-limit, limit)


@torch.no_grad()
def he_normal_tf(conv: nn.Conv2d) -> None:
    """``tf.contrib.layers.variance_scaling_initializer()``: truncated N(0, 1.3 * 2 / fan_in) at 2 deviations."""
    std = math.sqrt(1.3 * 2.0 / tf_fans(conv)[0])
    nn.init.trunc_normal_(conv.weight, 0.0, std, -2 * std, 2 * std)


@torch.no_grad()
def truncated_normal(conv: nn.Conv2d, std: float = 0.02) -> None:
    """``tf.truncated_normal_initializer(stddev=std)``."""
    nn.init.trunc_normal_(conv.weight, 0.0, std, -2 * std, 2 * std)


def init_generator(net: nn.Module, variant: str, scheme: str = "official") -> nn.Module:
    """Initialise an AnimeGAN generator in place by ``scheme`` (see the module docstring); returns it."""
    if scheme not in CHOICES:
        raise ValueError(f"weight_init must be one of {', '.join(CHOICES)}, not '{scheme}'")
    if scheme == "pytorch":
        return net
    he = scheme == "he" or variant == "v2"
    irb_depthwise = {id(m) for block in net.modules() if isinstance(block, InvertedResidual)
                     for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    for m in net.modules():
        if not isinstance(m, nn.Conv2d):
            continue
        if he:
            he_normal_tf(m)
        elif id(m) in irb_depthwise:
            truncated_normal(m, 0.02)
        else:
            xavier_uniform_tf(m)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return net


def init_discriminator(net: nn.Module, scheme: str = "official") -> nn.Module:
    """N(0, 0.02) convolutions (the official ``conv`` of ``tools/ops.py``) unless ``scheme`` is pytorch."""
    return net if scheme == "pytorch" else normal_init(net, 0.02)
