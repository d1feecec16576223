"""Foreign checkpoint layouts of AnimeGAN weights.

``animegan.v2-pytorch``: the AnimeGANv2 PyTorch state dicts (``paprika.pt``, ``face_paint_512_v2.pt``
...), keys ``block_a.0.1.weight`` ... ``out_layer.0.weight``. :class:`~.generator.GeneratorV2`
reproduces those keys, so conversion only strips a ``module.`` prefix (DataParallel saves) and
selects the v2 variant; the layout is recognised from the keys alone, so ``anime run animegan
--weights FILE.pt`` needs no variant option.

``animegan.pytorch-animegan-v2``: pytorch-animeGAN's ``GeneratorV2_*.pt`` (a dict whose
``model_state_dict`` holds ``conv_block1.0.conv.weight`` ... ``decode_blocks.0.bias``). The same
network under other names: ``conv_block1-4``/``res_blocks`` are ``block_a``-``block_e``, a block's
``conv``/``ins_norm`` are its layers 1/2, an inverted residual block's ``conv_block``,
``conv_block2``, ``conv``, ``norm`` are its ``layers.0-3``. 77 of its 78 tensors have a place in
the v2 generator; the 78th, the output convolution's bias, and its upsampling (doubling with
``align_corners=False``) are the generator options ``out_bias=True, upsample="half_pixel"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from anime_core.weights.renames import rename_modules
from anime_plugin_animegan.styles import LAYOUT_V2  # noqa: F401  (re-exported)

LAYOUT_PTRAN_V2 = "animegan.pytorch-animegan-v2"
PTRAN_V2_OPTIONS = {"variant": "v2", "upsample": "half_pixel", "out_bias": True}
#: pytorch-animeGAN block -> (our block, its number of layers)
_PTRAN_BLOCKS = {"conv_block1": ("block_a", 3), "conv_block2": ("block_b", 2), "res_blocks": ("block_c", 6),
                 "conv_block3": ("block_d", 2), "conv_block4": ("block_e", 3)}
_PTRAN_IRB = (("conv_block.conv", "layers.0.1"), ("conv_block.ins_norm", "layers.0.2"),
              ("conv_block2.conv", "layers.1.1"), ("conv_block2.ins_norm", "layers.1.2"),
              ("conv", "layers.2"), ("norm", "layers.3"))


@lru_cache(maxsize=1)
def v2_keys() -> frozenset[str]:
    """The state-dict keys of the v2 generator (built on the meta device: no memory, no time)."""
    from anime_plugin_animegan.generator import GeneratorV2

    with torch.device("meta"):
        return frozenset(GeneratorV2().state_dict())


def _strip(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def matches_v2(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys are exactly the AnimeGANv2 PyTorch generator's."""
    return set(_strip(state)) == v2_keys()


def convert_v2(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (native generator state, ``{"variant": "v2"}``)."""
    return _strip(state), {"variant": "v2"}


@lru_cache(maxsize=1)
def ptran_v2_renames() -> dict[str, str]:
    """pytorch-animeGAN ``GeneratorV2`` module prefix -> ours (``res_blocks.1-4`` are inverted residual blocks)."""
    renames = {"decode_blocks.0.": "out_layer.0."}
    for theirs, (ours, n) in _PTRAN_BLOCKS.items():
        for i in range(n):
            if theirs == "res_blocks" and 1 <= i <= 4:
                renames.update({f"{theirs}.{i}.{a}.": f"{ours}.{i}.{b}." for a, b in _PTRAN_IRB})
            else:
                renames.update({f"{theirs}.{i}.conv.": f"{ours}.{i}.1.", f"{theirs}.{i}.ins_norm.": f"{ours}.{i}.2."})
    return renames


@lru_cache(maxsize=1)
def ptran_v2_keys() -> frozenset[str]:
    """The state-dict keys of the v2 generator with pytorch-animeGAN's options."""
    from anime_plugin_animegan.generator import build_v2

    with torch.device("meta"):
        return frozenset(build_v2(upsample="half_pixel", out_bias=True).state_dict())


def _rename(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    return rename_modules(_strip(state), ptran_v2_renames())


def matches_ptran_v2(state: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys are exactly pytorch-animeGAN's ``GeneratorV2`` (its ``model_state_dict``)."""
    native, left = _rename(state)
    return not left and set(native) == ptran_v2_keys()


def convert_ptran_v2(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (native generator state, ``{"variant": "v2", "upsample": "half_pixel", "out_bias": True}``)."""
    native, _ = _rename(state)
    return native, dict(PTRAN_V2_OPTIONS)


def to_ptran_v2(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A native v2 state (``out_bias=True``) under pytorch-animeGAN's names: the inverse of the conversion."""
    back = {v: k for k, v in ptran_v2_renames().items()}
    out = {}
    for key, value in state.items():
        owner, _, leaf = key.rpartition(".")
        out[f"{back[owner + '.']}{leaf}"] = value
    return out


def describe(state: Mapping[str, torch.Tensor]) -> str | None:
    """The closest AnimeGAN PyTorch layout ``state`` resembles and what differs, as a clause; ``None`` if none."""
    keys = set(_strip(state))
    if any(k.startswith("encode_blocks.") for k in keys) and any(k.startswith("res_blocks.") for k in keys):
        return ("looks like a pytorch-animeGAN GeneratorV1 checkpoint (generator_hayao.pth), a network anime-core "
                "does not implement; its GeneratorV2 files (GeneratorV2_*.pt) load")
    native, left = _rename(state)
    if len(native) >= len(ptran_v2_keys()) // 2:
        missing = sorted(ptran_v2_keys() - set(native))
        back = {v: k for k, v in ptran_v2_renames().items()}
        if left:
            return f"looks like a pytorch-animeGAN GeneratorV2 checkpoint, but {left[0]} is no tensor of that network"
        if missing:
            owner, _, leaf = missing[0].rpartition(".")
            return f"looks like a pytorch-animeGAN GeneratorV2 checkpoint, but it lacks {back[owner + '.']}{leaf}"
        return "looks like a pytorch-animeGAN GeneratorV2 checkpoint; run it with 'anime run animegan --weights FILE'"
    v2 = {k for k in keys if k in v2_keys()}
    if len(v2) >= len(v2_keys()) // 2:
        missing, extra = sorted(v2_keys() - keys), sorted(keys - v2_keys())
        if missing:
            return f"looks like an AnimeGANv2 PyTorch checkpoint (paprika.pt), but it lacks {missing[0]}"
        if extra:
            return f"looks like an AnimeGANv2 PyTorch checkpoint (paprika.pt), but it also holds {extra[0]}"
        return "looks like an AnimeGANv2 PyTorch checkpoint; run it with 'anime run animegan --weights FILE'"
    return None


def contract_samples() -> dict[str, dict[str, torch.Tensor]]:
    """A state dict in the pytorch-animeGAN layout for the plugin contract test (``plugin.contract_samples``)."""
    from anime_plugin_animegan.generator import build_v2

    return {LAYOUT_PTRAN_V2: to_ptran_v2(build_v2(upsample="half_pixel", out_bias=True).state_dict())}
