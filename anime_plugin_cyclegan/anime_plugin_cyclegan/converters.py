"""Checkpoints of the CycleGAN/pix2pix PyTorch code (Zhu, Park, Isola, Efros; ``latest_net_G_A.pth``).

That code saves ``net.state_dict()`` of a generator whose layers sit in one ``nn.Sequential``
called ``model``; the layer list is ours, only the names differ:

- ResNet generator (``resnet_6blocks``/``resnet_9blocks``): ``model.{1,4,7}`` encoder convolutions,
  ``model.{10+i}.conv_block.{1,5}`` the two convolutions of residual block ``i`` (``{1,6}`` when
  trained with dropout, which sits between them), ``model.{10+n}``/``{13+n}`` the transposed
  convolutions and ``model.{17+n}`` the last convolution -> :class:`~.generator.ResNetGenerator`.
- U-Net (``unet_256``/``unet_128``): nested blocks, ``model.model.1.model.3.model....`` one level
  deeper per ``model.3`` -> :class:`~.generator.Pix2PixUNet` (``arch=pix2pix-unet``), whose
  wiring is theirs rather than a rename onto our own U-Net.
- PatchGAN discriminator (``basic``/``n_layers``): ``model.{0,2,5}`` -> ``features``, ``model.{8,11}``
  -> ``head`` of :class:`~.discriminator.PatchDiscriminator`. A discriminator is no generator, so it
  is not a registered layout of ``anime run``; :func:`convert_patchgan` converts it for code that
  builds the discriminator (``anime_core.build("cyclegan", "discriminator", **options)``).

``--norm batch`` (pix2pix) is read from the keys (BatchNorm has a ``weight``; affine-free
InstanceNorm has none). Files from before PyTorch 0.4 carry InstanceNorm ``running_mean``/
``running_var``/``num_batches_tracked`` buffers that the network never uses; they are dropped, as the
original code's own loader does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from anime_core.weights.renames import rename_modules

LAYOUT_RESNET = "cyclegan.pytorch-resnet"
LAYOUT_UNET = "cyclegan.pytorch-unet"
LAYOUT_PATCHGAN = "cyclegan.pytorch-patchgan"
ORIGIN = "CycleGAN/pix2pix PyTorch"
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

StateDict = dict[str, torch.Tensor]
#: (foreign module prefix -> native module prefix, builder options, a short name of the network)
Plan = tuple[dict[str, str], dict[str, Any], str]


def clean(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Without a DataParallel ``module.`` prefix and without affine-free InstanceNorm buffers."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    owners_with_weight = {k.rsplit(".", 1)[0] for k in state if k.endswith(".weight")}
    return {
        k: v for k, v in state.items()
        if not (k.rsplit(".", 1)[-1] in _BUFFERS and k.rsplit(".", 1)[0] not in owners_with_weight)
    }


def _norm(state: Mapping[str, torch.Tensor], norm_key: str) -> str:
    return "batch" if norm_key in state else "instance"


def resnet_renames(n_blocks: int, dropout: bool = False) -> dict[str, str]:
    """Foreign -> native module prefixes of a ResNet generator with ``n_blocks`` residual blocks."""
    second = 6 if dropout else 5  # dropout sits between the two convolutions of a block
    renames = {f"model.{i}.": f"encoder.{i}." for i in (1, 2, 4, 5, 7, 8)}
    for b in range(n_blocks):
        for theirs, ours in ((1, 1), (2, 2), (second, 5), (second + 1, 6)):
            renames[f"model.{10 + b}.conv_block.{theirs}."] = f"blocks.{b}.body.{ours}."
    renames.update({f"model.{10 + n_blocks + k}.": f"decoder.{k}." for k in range(9)})
    return renames


def unet_renames(n_downs: int) -> dict[str, str]:
    """Foreign -> native module prefixes of a U-Net with ``n_downs`` levels (``unet_256``: 8)."""
    levels = ["model.model.", *("model.model.1.model." + "3.model." * i for i in range(n_downs - 1))]
    renames = {"model.model.0.": "down.0.0.", "model.model.3.": f"up.{n_downs - 1}.1."}
    for i, p in enumerate(levels[1:-1], start=1):
        renames.update({f"{p}1.": f"down.{i}.1.", f"{p}2.": f"down.{i}.2.",
                        f"{p}5.": f"up.{n_downs - 1 - i}.1.", f"{p}6.": f"up.{n_downs - 1 - i}.2."})
    inner = levels[-1]
    renames.update({f"{inner}1.": f"down.{n_downs - 1}.1.", f"{inner}3.": "up.0.1.", f"{inner}4.": "up.0.2."})
    return renames


def _resnet_plan(state: Mapping[str, torch.Tensor]) -> Plan | None:
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if not blocks or blocks != list(range(10, 10 + len(blocks))) or "model.1.weight" not in state:
        return None
    n = len(blocks)
    norm = _norm(state, "model.2.weight")
    options = {"arch": "resnet", "width": int(state["model.1.weight"].shape[0]), "n_blocks": n,
               "attention": "none", "norm": norm}
    renames = resnet_renames(n, dropout="model.10.conv_block.6.weight" in state)
    return renames, options, f"ResNet-{n} generator ({norm} norm)"


def _unet_depth(state: Mapping[str, torch.Tensor]) -> int | None:
    """How many nested levels the U-Net has (``unet_256``: 8); ``None`` unless the keys are a U-Net's."""
    if "model.model.0.weight" not in state:
        return None
    prefix = "model.model.1.model."
    for depth in range(2, 17):
        if f"{prefix}1.weight" not in state:
            return None
        if f"{prefix}3.weight" in state:  # the innermost block has its transposed conv at index 3
            return depth
        prefix = f"{prefix}3.model."
    return None


def _unet_plan(state: Mapping[str, torch.Tensor]) -> Plan | None:
    n = _unet_depth(state)
    if n is None:
        return None
    norm = _norm(state, "model.model.1.model.2.weight")
    options = {"arch": "pix2pix-unet", "width": int(state["model.model.0.weight"].shape[0]), "n_downs": n,
               "norm": norm, "attention": "none"}
    return unet_renames(n), options, f"U-Net generator (unet_{2**n}, {norm} norm)"


def _patchgan_plan(state: Mapping[str, torch.Tensor]) -> Plan | None:
    convs = sorted(int(m.group(1)) for k, v in state.items()
                   if (m := re.fullmatch(r"model\.(\d+)\.weight", k)) and v.dim() == 4)
    layers = len(convs) - 2
    if layers < 1 or convs != [0, *(2 + 3 * j for j in range(layers)), 3 * layers + 2]:
        return None
    split = 3 * layers - 1  # the stride-1 block starts the head
    renames = {f"model.{k}.": (f"features.{k}." if k < split else f"head.{k - split}.") for k in range(split + 4)}
    norm = _norm(state, "model.3.weight") if layers > 1 else _norm(state, f"model.{split + 1}.weight")
    options = {"width": int(state["model.0.weight"].shape[0]), "n_layers": layers, "norm": norm, "attention": False}
    return renames, options, f"PatchGAN discriminator ({layers} layers, {norm} norm)"


def _difference(build: Callable[..., torch.nn.Module], options: Mapping[str, Any], native: StateDict,
                left: list[str], back: Mapping[str, str]) -> str | None:
    """What keeps ``native`` from loading into ``build(**options)``, in the file's key names; ``None``: it fits."""
    if left:
        return f"it has {len(left)} tensors the layout does not have (e.g. {left[0]})"
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build(**options).state_dict().items()}
    except Exception as exc:  # options read from an odd file: the file does not fit
        return f"its sizes build no network ({exc})"

    def theirs(key: str) -> str:
        owner, _, leaf = key.rpartition(".")
        return f"{back.get(owner + '.', owner + '.')}{leaf}"

    for key, shape in expected.items():
        if key not in native:
            return f"it lacks {theirs(key)}"
        if tuple(native[key].shape) != shape:
            return f"its {theirs(key)} is {list(native[key].shape)} where anime-core's network has {list(shape)}"
    extra = [k for k in native if k not in expected]
    return f"it has {theirs(extra[0])}, which the layout does not" if extra else None


def _build_generator(**options: Any) -> torch.nn.Module:
    """The generator ``options`` (a plan's, ``arch`` included) describe, chosen by the core as for a run."""
    from anime_core.registry import get_registry

    return get_registry().build("cyclegan", "generator", **options)


def _build_discriminator(**options: Any) -> torch.nn.Module:
    from anime_plugin_cyclegan.discriminator import build_discriminator

    return build_discriminator(**options)


def _analyse(state: Mapping[str, torch.Tensor], plan_fn: Callable[[Mapping[str, torch.Tensor]], Plan | None],
             build: Callable[..., torch.nn.Module]) -> tuple[StateDict, dict[str, Any], str, str | None] | None:
    """``(native state, options, name, what differs or None)`` when ``state`` has the plan's shape of keys."""
    state = clean(state)
    plan = plan_fn(state)
    if plan is None:
        return None
    renames, options, name = plan
    native, left = rename_modules(state, renames)
    back = {v: k for k, v in renames.items()}
    return native, options, name, _difference(build, options, native, left, back)


def _matches(state: Mapping[str, torch.Tensor], plan_fn: Callable[..., Plan | None]) -> bool:
    found = _analyse(state, plan_fn, _build_generator)
    return found is not None and found[3] is None


def _convert(state: Mapping[str, torch.Tensor], plan_fn: Callable[..., Plan | None],
             build: Callable[..., torch.nn.Module] = _build_generator) -> tuple[StateDict, dict[str, Any]]:
    found = _analyse(state, plan_fn, build)
    if found is None or found[3] is not None:
        from anime_core.errors import WeightsUnavailable

        why = "its keys are not that layout" if found is None else found[3]
        raise WeightsUnavailable(f"not a convertible {ORIGIN} checkpoint: {why}")
    return found[0], found[1]


def matches_resnet(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a ResNet generator of the CycleGAN/pix2pix code that fits :class:`~.generator.ResNetGenerator`."""
    return _matches(state, _resnet_plan)


def convert_resnet(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, dict[str, Any]]:
    """-> (native generator state, ``{"arch": "resnet", "width", "n_blocks", "norm", ...}``)."""
    return _convert(state, _resnet_plan)


def matches_unet(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a U-Net of the CycleGAN/pix2pix code that fits :class:`~.generator.Pix2PixUNet`."""
    return _matches(state, _unet_plan)


def convert_unet(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, dict[str, Any]]:
    """-> (native generator state, ``{"arch": "pix2pix-unet", "width", "n_downs", "norm", ...}``)."""
    return _convert(state, _unet_plan)


def matches_patchgan(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a PatchGAN discriminator that fits :class:`~.discriminator.PatchDiscriminator`."""
    found = _analyse(state, _patchgan_plan, _build_discriminator)
    return found is not None and found[3] is None


def convert_patchgan(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, dict[str, Any]]:
    """-> (native discriminator state, options for ``anime_core.build("cyclegan", "discriminator", ...)``)."""
    return _convert(state, _patchgan_plan, _build_discriminator)


def describe(state: Mapping[str, torch.Tensor]) -> str | None:
    """The closest CycleGAN/pix2pix layout ``state`` resembles and what differs, as a clause; ``None`` if none.

    For the error on a file no converter of the requested model recognised, e.g. a discriminator
    given to ``anime run``, a generator with other channel counts, or a CycleGAN file given to
    another model.
    """
    for plan_fn, build in ((_resnet_plan, _build_generator), (_unet_plan, _build_generator),
                           (_patchgan_plan, _build_discriminator)):
        found = _analyse(state, plan_fn, build)
        if found is None:
            continue
        _, _, name, differs = found
        if differs:
            return f"looks like a {ORIGIN} {name} checkpoint, but {differs}"
        if plan_fn is _patchgan_plan:
            return (f"looks like a {ORIGIN} {name} checkpoint (latest_net_D_A.pth); 'anime run' needs the "
                    f"generator of the same run, e.g. latest_net_G_A.pth")
        return f"looks like a {ORIGIN} {name} checkpoint; run it with 'anime run cyclegan --weights FILE'"
    return None


def to_foreign(state: Mapping[str, torch.Tensor], renames: Mapping[str, str]) -> StateDict:
    """A native state dict under the foreign names of ``renames`` (the inverse of a conversion)."""
    back = {v: k for k, v in renames.items()}
    out = {}
    for key, value in state.items():
        owner, _, leaf = key.rpartition(".")
        out[f"{back[owner + '.']}{leaf}"] = value
    return out


def contract_samples() -> dict[str, StateDict]:
    """A small state dict in each registered layout, for the plugin contract test."""
    from anime_plugin_cyclegan.generator import Pix2PixUNet, ResNetGenerator

    resnet = ResNetGenerator(width=4, n_blocks=2).state_dict()
    unet = Pix2PixUNet(width=4, n_downs=5, norm="batch").state_dict()
    return {LAYOUT_RESNET: to_foreign(resnet, resnet_renames(2)), LAYOUT_UNET: to_foreign(unet, unet_renames(5))}
