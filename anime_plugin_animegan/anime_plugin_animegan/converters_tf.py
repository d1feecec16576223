"""The official TensorFlow 1 checkpoints of AnimeGAN and AnimeGANv2 (TachibanaYoshino).

``animegan.v1-tf``: the paper's network as the authors' ``net/generator.py`` (AnimeGAN repository)
builds it, variables ``generator/G_MODEL/{b1,b2,m,u2,u1}/...`` (129 tensors, 3,956,096 values).
Every tensor maps one-to-one onto :class:`~.generator.GeneratorV1`: the scopes follow the layer order
of the paper's Fig. 1 (``Conv``/``InstanceNorm`` are a Conv-Block, ``SeparableConv2d`` a DSConv whose
strided copy comes first in a Down-Conv, ``m/rK`` the K-th inverted residual block), kernels are
transposed from TensorFlow's HWIO to PyTorch's OIHW, depthwise kernels from (H, W, C, 1) to
(C, 1, H, W). The network needs ``resize="tf1_legacy"`` and ``dsconv_eps=1e-6`` to reproduce the
TensorFlow graph, so the converter selects them.

``animegan.v2-tf``: AnimeGANv2's generator (``generator/G_MODEL/{A,B,C,D,E,out_layer}/...``), the
network the PyTorch port's weights were converted from; it maps one-to-one onto
:class:`~.generator.GeneratorV2` (layer norms over (H, W, C) are its one-group GroupNorms; the
inverted residual blocks' depthwise convolutions carry a bias). The TF graph doubles sizes with
TF1's legacy bilinear resize and uses layer-norm epsilon 1e-12, so the converter selects
``upsample="tf1_legacy", norm_eps=1e-12``; with them the mapped weights reproduce the TF graph to
0.0006/255 (measured by running the authors' code in TensorFlow 2.21 compat.v1 on random weights,
outside the test suite, which has no TensorFlow).

A checkpoint saved during training (generator, discriminator and optimiser slots) also matches:
only the generator's variables are read. The scope before ``G_MODEL/`` may be any name.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

import torch

from anime_plugin_animegan.styles import LAYOUT_V1_TF, LAYOUT_V2_TF

V1_TF_OPTIONS = {"variant": "v1", "resize": "tf1_legacy", "dsconv_eps": 1e-6}
#: TF1 legacy x2 resize and tf.contrib layer norm epsilon: the official AnimeGANv2 network
V2_TF_OPTIONS = {"variant": "v2", "upsample": "tf1_legacy", "norm_eps": 1e-12}
Kind = Literal["conv", "depthwise", "vector"]
_ROOT = "G_MODEL/"


def _conv_block(native: str, scope: str, conv: str, norm: str) -> dict[str, tuple[str, Kind]]:
    """A Conv-Block: conv at ``.1``, instance norm at ``.2`` (:class:`~.generator.ConvBlock`)."""
    return {
        f"{native}.1.weight": (f"{scope}/{conv}/weights", "conv"),
        f"{native}.2.weight": (f"{scope}/{norm}/gamma", "vector"),
        f"{native}.2.bias": (f"{scope}/{norm}/beta", "vector"),
    }


def _dsconv(native: str, scope: str, sep: str) -> dict[str, tuple[str, Kind]]:
    """A DSConv: depthwise ``.1``, pointwise ``.2``, norm ``.3`` (tf.contrib's separable_conv2d + instance norm)."""
    return {
        f"{native}.1.weight": (f"{scope}/{sep}/depthwise_weights", "depthwise"),
        f"{native}.2.weight": (f"{scope}/{sep}/pointwise_weights", "conv"),
        f"{native}.3.weight": (f"{scope}/{sep}/InstanceNorm/gamma", "vector"),
        f"{native}.3.bias": (f"{scope}/{sep}/InstanceNorm/beta", "vector"),
    }


def _irb_v1(native: str, scope: str) -> dict[str, tuple[str, Kind]]:
    name = scope.rsplit("/", 1)[-1]
    return {
        **_conv_block(f"{native}.body.0", scope, "Conv", "InstanceNorm"),
        f"{native}.body.2.weight": (f"{scope}/{name}/w", "depthwise"),
        f"{native}.body.3.weight": (f"{scope}/1/gamma", "vector"),
        f"{native}.body.3.bias": (f"{scope}/1/beta", "vector"),
        f"{native}.body.5.weight": (f"{scope}/Conv_1/weights", "conv"),
        f"{native}.body.6.weight": (f"{scope}/2/gamma", "vector"),
        f"{native}.body.6.bias": (f"{scope}/2/beta", "vector"),
    }


@lru_cache(maxsize=1)
def v1_names() -> dict[str, tuple[str, Kind]]:
    """Native GeneratorV1 key -> (TF variable name below ``G_MODEL/``, how to transpose it)."""
    names: dict[str, tuple[str, Kind]] = {}
    names |= _conv_block("b1.0", "b1", "Conv", "InstanceNorm") | _conv_block("b1.1", "b1", "Conv_1", "InstanceNorm_1")
    names |= _dsconv("b1.2.strided", "b1", "SeparableConv2d") | _dsconv("b1.2.resized", "b1", "SeparableConv2d_1")
    names |= _conv_block("b2.0", "b2", "Conv", "InstanceNorm") | _dsconv("b2.1", "b2", "SeparableConv2d")
    names |= _dsconv("b2.2.strided", "b2", "SeparableConv2d_1") | _dsconv("b2.2.resized", "b2", "SeparableConv2d_2")
    names |= _conv_block("m.0", "m", "Conv", "InstanceNorm")
    for k in range(1, 9):
        names |= _irb_v1(f"m.{k}", f"m/r{k}")
    names |= _conv_block("m.9", "m", "Conv_1", "InstanceNorm_1")
    names |= _dsconv("u2.0.conv", "u2", "SeparableConv2d") | _dsconv("u2.1", "u2", "SeparableConv2d_1")
    names |= _conv_block("u2.2", "u2", "Conv", "InstanceNorm")
    names |= _dsconv("u1.0.conv", "u1", "SeparableConv2d") | _conv_block("u1.1", "u1", "Conv", "InstanceNorm")
    names |= _conv_block("u1.2", "u1", "Conv_1", "InstanceNorm_1")
    names["out.0.weight"] = ("Conv/weights", "conv")
    return names


def _cnl_v2(native: str, scope: str, index: int) -> dict[str, tuple[str, Kind]]:
    """AnimeGANv2's Conv2DNormLReLU number ``index`` of a scope: ``Conv_i`` + ``LayerNorm_i``."""
    suffix = f"_{index}" if index else ""
    return {
        f"{native}.1.weight": (f"{scope}/Conv{suffix}/weights", "conv"),
        f"{native}.2.weight": (f"{scope}/LayerNorm{suffix}/gamma", "vector"),
        f"{native}.2.bias": (f"{scope}/LayerNorm{suffix}/beta", "vector"),
    }


@lru_cache(maxsize=1)
def v2_names() -> dict[str, tuple[str, Kind]]:
    """Native GeneratorV2 key -> (TF variable name below ``G_MODEL/``, how to transpose it)."""
    names: dict[str, tuple[str, Kind]] = {}
    for block, scope, count in (("block_a", "A", 3), ("block_b", "B", 2), ("block_d", "D", 2), ("block_e", "E", 3)):
        for i in range(count):
            names |= _cnl_v2(f"{block}.{i}", scope, i)
    names |= _cnl_v2("block_c.0", "C", 0) | _cnl_v2("block_c.5", "C", 1)
    for k in range(1, 5):
        native, scope = f"block_c.{k}.layers", f"C/r{k}"
        names |= _cnl_v2(f"{native}.0", scope, 0)
        names[f"{native}.1.1.weight"] = (f"{scope}/r{k}/w", "depthwise")
        names[f"{native}.1.1.bias"] = (f"{scope}/r{k}/bias", "vector")
        names[f"{native}.1.2.weight"] = (f"{scope}/1/gamma", "vector")
        names[f"{native}.1.2.bias"] = (f"{scope}/1/beta", "vector")
        names[f"{native}.2.weight"] = (f"{scope}/Conv_1/weights", "conv")
        names[f"{native}.3.weight"] = (f"{scope}/2/gamma", "vector")
        names[f"{native}.3.bias"] = (f"{scope}/2/beta", "vector")
    names["out_layer.0.weight"] = ("out_layer/Conv/weights", "conv")
    return names


def _prefix(state: Mapping[str, Any], names: Mapping[str, tuple[str, Kind]]) -> str | None:
    """The scope before ``G_MODEL/`` under which every variable of ``names`` exists, if any."""
    probe = next(iter(names.values()))[0]
    for key in state:
        if key.endswith(_ROOT + probe):
            prefix = key[: -len(probe)]
            if all(prefix + tf_name in state for tf_name, _ in names.values()):
                return prefix
    return None


def _convert(
    state: Mapping[str, torch.Tensor], names: Mapping[str, tuple[str, Kind]]
) -> dict[str, torch.Tensor]:
    prefix = _prefix(state, names)
    if prefix is None:
        raise ValueError("not an official AnimeGAN TensorFlow generator checkpoint")
    out = {}
    for native, (tf_name, kind) in names.items():
        t = state[prefix + tf_name]
        if kind == "conv":  # HWIO -> OIHW
            t = t.permute(3, 2, 0, 1)
        elif kind == "depthwise":  # (H, W, C, 1) -> (C, 1, H, W)
            t = t.permute(2, 3, 0, 1)
        out[native] = t.contiguous()
    return out


def matches_v1(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the official AnimeGAN (v1) generator's 129 variables are all present."""
    return _prefix(state, v1_names()) is not None


def convert_v1(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (native GeneratorV1 state, the options that make it compute as the TF graph)."""
    return _convert(state, v1_names()), dict(V1_TF_OPTIONS)


def matches_v2(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the official AnimeGANv2 generator's variables are all present."""
    return _prefix(state, v2_names()) is not None


def convert_v2(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (native GeneratorV2 state, :data:`V2_TF_OPTIONS`); approximate, see the module docstring."""
    return _convert(state, v2_names()), dict(V2_TF_OPTIONS)


def to_tf(state: Mapping[str, torch.Tensor], names: Mapping[str, tuple[str, Kind]]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`_convert`: a native state under the official TF names and layouts."""
    out = {}
    for native, (tf_name, kind) in names.items():
        t = state[native]
        if kind == "conv":  # OIHW -> HWIO
            t = t.permute(2, 3, 1, 0)
        elif kind == "depthwise":  # (C, 1, H, W) -> (H, W, C, 1)
            t = t.permute(2, 3, 0, 1)
        out[f"generator/{_ROOT}{tf_name}"] = t.contiguous()
    return out


def contract_samples() -> dict[str, dict[str, torch.Tensor]]:
    """Generator states in both official TF layouts, for the plugin contract test (``plugin.contract_samples``)."""
    from anime_plugin_animegan.generator import build_v1, build_v2

    v1 = build_v1(resize="tf1_legacy", dsconv_eps=1e-6).state_dict()
    return {LAYOUT_V1_TF: to_tf(v1, v1_names()), LAYOUT_V2_TF: to_tf(build_v2().state_dict(), v2_names())}
