"""AnimeGAN generators: v1 (the paper) and v2 (AnimeGANv2's PyTorch layout).

v1 is the generator of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo
animation", section 3.1 and Fig. 1-2. It follows the layer list of the authors' official
TensorFlow code where it differs from the figures (the code's ``u1`` Up-Conv has 128 filters, the
figure says 64). All convolutions are bias-free; "CNL" is conv -> InstanceNorm (affine) ->
LeakyReLU(0.2), 3x3 layers reflect-pad 1, a stride-2 layer reflect-pads only the bottom/right by 1
(TensorFlow's "SAME"-like split). Resizes are bilinear: PyTorch's half-pixel
``align_corners=False`` by default; ``resize="tf1_legacy"`` reproduces TF1's ``resize_images``
(corner-aligned sampling without half-pixel centres, which subsamples when halving) and
``dsconv_eps=1e-6`` the epsilon of ``tf.contrib``'s instance norm in the separable convolutions:
with both, the official TF checkpoints give the official network's output (the conv blocks' norms
use 1e-5 in the TF code, PyTorch's default). 3,956,096 parameters
(section 4.2, Table 1). Input sides must be multiples of 4 (two halvings followed by two
doublings), so ``stride = 4``.

v2 reproduces the module structure of the widely shared AnimeGANv2 PyTorch weights
(``block_a.0.1.weight`` ... ``out_layer.0.weight``) so those files load by key: GroupNorm with
one group (LayerNorm over C, H, W), a 7x7 stem and head, four inverted residual blocks, and
bilinear ``align_corners=True`` resizes to the exact skip sizes, which makes any input size work
(``stride = 1``). 2,143,552 parameters. The same network trained by pytorch-animeGAN
(``GeneratorV2_*.pt``) doubles with ``scale_factor=2, align_corners=False`` and has a bias on the
output convolution: ``upsample="half_pixel", out_bias=True`` (then ``stride = 4``).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# v1 (paper)

V1_RESIZE = ("half_pixel", "tf1_legacy")


def _tf1_legacy_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_bilinear(align_corners=False, half_pixel_centers=False)``: sample at ``i * in / out``."""
    for dim, n_out in ((-2, size[0]), (-1, size[1])):
        n_in = x.shape[dim]
        pos = torch.arange(n_out, device=x.device, dtype=torch.float32) * (n_in / n_out)
        lo = pos.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (pos - lo).to(x.dtype).view(-1, 1) if dim == -2 else (pos - lo).to(x.dtype)
        a, b = x.index_select(dim, lo), x.index_select(dim, hi)
        x = a + (b - a) * frac
    return x


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "tf1_legacy":
        return _tf1_legacy_resize(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _pad(stride: int) -> nn.Module:
    """Reflect padding of a 3x3 layer: 1 on every side, or bottom/right only when strided."""
    return nn.ReflectionPad2d(1 if stride == 1 else (0, 1, 0, 1))


class ConvBlock(nn.Sequential):
    """Conv-Block (Fig. 2): k x k conv (no bias) -> InstanceNorm -> LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3) -> None:
        pad = nn.ReflectionPad2d(kernel_size // 2) if kernel_size > 1 else nn.Identity()
        super().__init__(
            pad,
            nn.Conv2d(c_in, c_out, kernel_size, bias=False),
            nn.InstanceNorm2d(c_out, affine=True),
            nn.LeakyReLU(0.2),
        )


class DSConv(nn.Sequential):
    """DSConv (Fig. 2): depthwise 3x3 -> pointwise 1x1 -> InstanceNorm -> LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, eps: float = 1e-5) -> None:
        super().__init__(
            _pad(stride),
            nn.Conv2d(c_in, c_in, 3, stride=stride, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.InstanceNorm2d(c_out, affine=True, eps=eps),
            nn.LeakyReLU(0.2),
        )


class DownConv(nn.Module):
    """Down-Conv (Fig. 2): DSConv(stride 2)(x) + DSConv(stride 1)(resize(x, H/2, W/2))."""

    def __init__(self, c_in: int, c_out: int, resize: str = "half_pixel", eps: float = 1e-5) -> None:
        super().__init__()
        self.mode = resize
        self.strided = DSConv(c_in, c_out, stride=2, eps=eps)
        self.resized = DSConv(c_in, c_out, stride=1, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = _resize(x, (x.shape[-2] // 2, x.shape[-1] // 2), self.mode)
        return self.strided(x) + self.resized(half)


class UpConv(nn.Module):
    """Up-Conv (Fig. 2): bilinear resize to 2H x 2W -> DSConv; replaces CartoonGAN's transposed conv."""

    def __init__(self, c_in: int, c_out: int, resize: str = "half_pixel", eps: float = 1e-5) -> None:
        super().__init__()
        self.mode = resize
        self.conv = DSConv(c_in, c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_resize(x, (2 * x.shape[-2], 2 * x.shape[-1]), self.mode))


class InvertedResidual(nn.Module):
    """IRB (Fig. 2, MobileNetV2): CNL 1x1 c->2c, depthwise 3x3 + IN + LReLU, pointwise 2c->c + IN, + x."""

    def __init__(self, channels: int = 256, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            ConvBlock(channels, hidden, kernel_size=1),
            nn.ReflectionPad2d(1),
            nn.Conv2d(hidden, hidden, 3, groups=hidden, bias=False),
            nn.InstanceNorm2d(hidden, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, 1, bias=False),  # the last layer has no activation (3.1)
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GeneratorV1(nn.Module):
    """The AnimeGAN generator of the paper (Fig. 1): encoder, 8 IRBs, decoder, 1x1 conv + tanh.

    ``resize`` (``half_pixel`` | ``tf1_legacy``) and ``dsconv_eps`` only matter for weights
    trained by the official TensorFlow code (see the module docstring).
    """

    stride = 4

    def __init__(self, n_blocks: int = 8, resize: str = "half_pixel", dsconv_eps: float = 1e-5) -> None:
        super().__init__()
        if resize not in V1_RESIZE:
            raise ValueError(f"resize must be one of {', '.join(V1_RESIZE)}, not '{resize}'")
        if not 0 < dsconv_eps < 1:
            raise ValueError(f"dsconv_eps must be a small positive number, not {dsconv_eps}")
        up = {"resize": resize, "eps": dsconv_eps}
        self.b1 = nn.Sequential(ConvBlock(3, 64), ConvBlock(64, 64), DownConv(64, 128, **up))
        self.b2 = nn.Sequential(ConvBlock(128, 128), DSConv(128, 128, eps=dsconv_eps), DownConv(128, 256, **up))
        self.m = nn.Sequential(ConvBlock(256, 256), *[InvertedResidual(256) for _ in range(n_blocks)],
                               ConvBlock(256, 256))
        self.u2 = nn.Sequential(UpConv(256, 128, **up), DSConv(128, 128, eps=dsconv_eps), ConvBlock(128, 128))
        self.u1 = nn.Sequential(UpConv(128, 128, **up), ConvBlock(128, 64), ConvBlock(64, 64))
        self.out = nn.Sequential(nn.Conv2d(64, 3, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.u1(self.u2(self.m(self.b2(self.b1(x))))))


# --------------------------------------------------------------------------------------------
# v2 (AnimeGANv2, PyTorch weights layout)


class ConvNormLReLU(nn.Sequential):
    """pad (0) -> conv (1, padding 0) -> GroupNorm(1 group) (2) -> LeakyReLU(0.2) (3)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | tuple[int, int, int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=0, groups=groups, bias=bias),
            nn.GroupNorm(1, c_out, eps=eps, affine=True),
            nn.LeakyReLU(0.2),
        )


class InvertedResBlock(nn.Module):
    """AnimeGANv2 IRB: CNL 1x1 c->2c, depthwise CNL 3x3 (with bias), 1x1 2c->out, GroupNorm; residual if c == out."""

    def __init__(self, c_in: int, c_out: int, expansion: int = 2, eps: float = 1e-5) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.residual = c_in == c_out
        self.layers = nn.Sequential(
            ConvNormLReLU(c_in, hidden, kernel_size=1, padding=0, eps=eps),
            ConvNormLReLU(hidden, hidden, groups=hidden, bias=True, eps=eps),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.GroupNorm(1, c_out, eps=eps, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


V2_UPSAMPLE = ("align_corners", "half_pixel", "tf1_legacy")


class GeneratorV2(nn.Module):
    """AnimeGANv2 generator; attribute names reproduce the PyTorch checkpoint keys.

    ``upsample``: ``align_corners`` resizes to the skip's exact size with ``align_corners=True``
    (the AnimeGANv2 port); ``half_pixel`` doubles with ``align_corners=False`` (pytorch-animeGAN).
    ``out_bias`` adds the output convolution's bias (pytorch-animeGAN). ``tf1_legacy`` doubles with
    TensorFlow 1's legacy bilinear resize and, with ``norm_eps=1e-12`` (``tf.contrib`` layer norm),
    is the official AnimeGANv2 TF network.
    """

    def __init__(self, upsample: str = "align_corners", out_bias: bool = False, norm_eps: float = 1e-5) -> None:
        super().__init__()
        if upsample not in V2_UPSAMPLE:
            raise ValueError(f"upsample must be one of {', '.join(V2_UPSAMPLE)}, not '{upsample}'")
        self.upsample = upsample
        # doubling twice only restores the input size when both halvings were exact
        self.stride = 1 if upsample == "align_corners" else 4
        down = (0, 1, 0, 1)
        cnl = partial(ConvNormLReLU, eps=norm_eps)
        self.block_a = nn.Sequential(cnl(3, 32, kernel_size=7, padding=3), cnl(32, 64, stride=2, padding=down),
                                     cnl(64, 64))
        self.block_b = nn.Sequential(cnl(64, 128, stride=2, padding=down), cnl(128, 128))
        self.block_c = nn.Sequential(
            cnl(128, 128),
            InvertedResBlock(128, 256, eps=norm_eps),
            *[InvertedResBlock(256, 256, eps=norm_eps) for _ in range(3)],
            cnl(256, 128),
        )
        self.block_d = nn.Sequential(cnl(128, 128), cnl(128, 128))
        self.block_e = nn.Sequential(cnl(128, 64), cnl(64, 64), cnl(64, 32, kernel_size=7, padding=3))
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=out_bias), nn.Tanh())

    def _up(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.upsample == "half_pixel":
            return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.upsample == "tf1_legacy":
            return _tf1_legacy_resize(y, (2 * y.shape[-2], 2 * y.shape[-1]))
        return F.interpolate(y, size=like.shape[-2:], mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.block_a(x)
        y = self.block_c(self.block_b(a))
        y = self.block_d(self._up(y, a))
        return self.out_layer(self.block_e(self._up(y, x)))


# --------------------------------------------------------------------------------------------
# builders: the variants ``animegan.v1`` and ``animegan.v2`` (plugin.py); the core picks one by ``variant``


def build_v1(resize: str = "half_pixel", dsconv_eps: float = 1e-5) -> GeneratorV1:
    """``animegan.v1``: the paper's generator (``resize="tf1_legacy", dsconv_eps=1e-6`` for official TF weights)."""
    return GeneratorV1(resize=resize, dsconv_eps=dsconv_eps)


def build_v2(upsample: str = "align_corners", out_bias: bool = False, norm_eps: float = 1e-5) -> GeneratorV2:
    """``animegan.v2``: AnimeGANv2 in the PyTorch weights layout (``upsample="half_pixel", out_bias=True``:
    pytorch-animeGAN's ``GeneratorV2``; ``upsample="tf1_legacy", norm_eps=1e-12``: the official TF network)."""
    return GeneratorV2(upsample=upsample, out_bias=out_bias, norm_eps=norm_eps)
