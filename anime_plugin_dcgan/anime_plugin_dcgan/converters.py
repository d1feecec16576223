"""Checkpoints of the PyTorch examples DCGAN (``dcgan/main.py``: ``netG_epoch_N.pth``, ``netD_epoch_N.pth``).

That script saves ``netG.state_dict()`` / ``netD.state_dict()`` of networks whose layers sit in one
``nn.Sequential`` called ``main``, always for 64 px images:

- generator: the layer list of :class:`~.generator.DCGANGenerator` at ``image_size=64`` index for
  index (``main.{0,3,6,9,12}`` transposed convolutions, ``main.{1,4,7,10}`` batch norms), so
  ``main.`` becomes ``net.``; ``nz`` and ``ngf`` are read from the shapes (``latent_dim``, ``width``).
- discriminator: ``main.{0,2,5,8}`` the stride-2 convolutions (batch norms at ``{3,6,9}``) ->
  ``blocks.{0,1,2,3}``, ``main.11`` -> ``head``. Their convolutions have no bias where ours have
  one (the first and the head), so those biases are zero. Their ``main.12`` is a Sigmoid: they
  score a probability, :class:`~.discriminator.DCGANDiscriminator` a logit, so
  ``sigmoid(ours(x)) == theirs(x)`` (our losses take logits: BCE-with-logits is their BCE on the
  sigmoid). A discriminator is not a registered layout of ``anime run``; :func:`convert_discriminator`
  converts it for code that builds one (``anime_core.build("dcgan", "discriminator", **options)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

LAYOUT_GENERATOR = "dcgan.pytorch-examples"
ORIGIN = "PyTorch examples DCGAN"
IMAGE_SIZE = 64  # main.py's networks are fixed at 64 px (its --imageSize only resizes the data)
_G_CONVS = (0, 3, 6, 9, 12)
_G_NORMS = (1, 4, 7, 10)
_D_CONVS = (0, 2, 5, 8, 11)
_D_NORMS = (3, 6, 9)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: their discriminator's layer index -> our module
_D_BLOCKS = {0: "blocks.0.0", 2: "blocks.1.0", 3: "blocks.1.1", 5: "blocks.2.0", 6: "blocks.2.1", 8: "blocks.3.0",
             9: "blocks.3.1", 11: "head"}

StateDict = dict[str, torch.Tensor]


def _strip(state: Mapping[str, torch.Tensor]) -> StateDict:
    return {k.removeprefix("module."): v for k, v in state.items()}


def _expected(convs: tuple[int, ...], norms: tuple[int, ...]) -> set[str]:
    return {f"main.{i}.weight" for i in convs} | {f"main.{i}.{leaf}" for i in norms for leaf in _BN}


def _is_generator(state: Mapping[str, torch.Tensor]) -> bool:
    return set(state) == _expected(_G_CONVS, _G_NORMS)


def _is_discriminator(state: Mapping[str, torch.Tensor]) -> bool:
    return set(state) == _expected(_D_CONVS, _D_NORMS)


def _generator_options(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    nz, c0 = state["main.0.weight"].shape[:2]
    return {"latent_dim": int(nz), "image_size": IMAGE_SIZE, "width": int(c0) // 8, "attention": False,
            "num_classes": 0}


def _discriminator_options(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {"image_size": IMAGE_SIZE, "width": int(state["main.0.weight"].shape[0]), "batch_norm": True,
            "spectral_norm": False, "attention": False, "num_classes": 0, "num_scales": 1}


def _shape_difference(net: torch.nn.Module, native: Mapping[str, torch.Tensor], back: Mapping[str, str]) -> str | None:
    """The first tensor whose shape differs from ``net``'s, named as in the file; ``None`` if all fit."""
    for key, tensor in net.state_dict().items():
        if key in native and tuple(native[key].shape) != tuple(tensor.shape):
            return (f"its {back.get(key, key)} is {list(native[key].shape)} where the network anime-core builds has "
                    f"{list(tensor.shape)}")
    return None


def _generator_native(state: StateDict) -> StateDict:
    return {f"net.{k.removeprefix('main.')}": v for k, v in state.items()}


def _discriminator_name(key: str) -> str:
    """``main.N.leaf`` of their discriminator -> our name."""
    index, _, leaf = key.removeprefix("main.").partition(".")
    return f"{_D_BLOCKS[int(index)]}.{leaf}"


def _discriminator_native(state: StateDict) -> StateDict:
    native = {_discriminator_name(k): v for k, v in state.items()}
    w0, head = state["main.0.weight"], state["main.11.weight"]
    native["blocks.0.0.bias"] = torch.zeros(w0.shape[0], dtype=w0.dtype)  # their convs have no bias: zero is none
    native["head.bias"] = torch.zeros(head.shape[0], dtype=head.dtype)
    return native


def _generator_problem(state: StateDict) -> str | None:
    from anime_plugin_dcgan.generator import build_generator

    options = _generator_options(state)
    if options["width"] < 1:
        return "its first layer has fewer than 8 channels"
    with torch.device("meta"):
        net = build_generator(**options)
    back = {f"net.{k.removeprefix('main.')}": k for k in state}
    return _shape_difference(net, _generator_native(state), back)


def _discriminator_problem(state: StateDict) -> str | None:
    from anime_plugin_dcgan.discriminator import build_discriminator

    with torch.device("meta"):
        net = build_discriminator(**_discriminator_options(state))
    back = {_discriminator_name(k): k for k in state}
    return _shape_difference(net, _discriminator_native(state), back)


def matches_generator(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a ``netG_epoch_N.pth`` that fits :class:`~.generator.DCGANGenerator` (3-channel images)."""
    state = _strip(state)
    return _is_generator(state) and _generator_problem(state) is None


def convert_generator(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, dict[str, Any]]:
    """-> (native generator state, ``{"latent_dim": nz, "image_size": 64, "width": ngf, ...}``)."""
    state = _strip(state)
    return _generator_native(state), _generator_options(state)


def matches_discriminator(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a ``netD_epoch_N.pth`` that fits :class:`~.discriminator.DCGANDiscriminator`."""
    state = _strip(state)
    return _is_discriminator(state) and _discriminator_problem(state) is None


def convert_discriminator(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, dict[str, Any]]:
    """-> (native discriminator state, its options); ``sigmoid`` of its score is the original's output."""
    from anime_core.errors import WeightsUnavailable

    state = _strip(state)
    if not _is_discriminator(state):
        raise WeightsUnavailable(f"not a {ORIGIN} discriminator checkpoint (netD_epoch_N.pth)")
    problem = _discriminator_problem(state)
    if problem:
        raise WeightsUnavailable(f"not a convertible {ORIGIN} discriminator checkpoint: {problem}")
    return _discriminator_native(state), _discriminator_options(state)


def describe(state: Mapping[str, torch.Tensor]) -> str | None:
    """The closest PyTorch examples DCGAN layout ``state`` resembles and what differs, as a clause; else ``None``."""
    state = _strip(state)
    if _is_generator(state):
        problem = _generator_problem(state)
        if problem:
            return f"looks like a {ORIGIN} generator checkpoint (netG_epoch_N.pth), but {problem}"
        return f"looks like a {ORIGIN} generator checkpoint; run it with 'anime run dcgan --weights FILE'"
    if _is_discriminator(state):
        return (f"looks like a {ORIGIN} discriminator checkpoint (netD_epoch_N.pth); 'anime run' needs the "
                f"generator saved beside it, netG_epoch_N.pth")
    main = {k for k in state if k.startswith("main.")}
    if main and len(main) >= len(state) // 2:
        for name, expected in (("generator", _expected(_G_CONVS, _G_NORMS)),
                               ("discriminator", _expected(_D_CONVS, _D_NORMS))):
            if len(main & expected) >= len(expected) * 3 // 4:
                missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
                what = f"it lacks {missing[0]}" if missing else f"it also holds {extra[0]}"
                return f"looks like a {ORIGIN} {name} checkpoint, but {what} (other layers than main.py's 64 px net)"
    return None


def contract_samples() -> dict[str, StateDict]:
    """A small ``netG`` state dict (nz 8, ngf 2) for the plugin contract test."""
    from anime_plugin_dcgan.generator import build_generator

    net = build_generator(latent_dim=8, image_size=IMAGE_SIZE, width=2)
    return {LAYOUT_GENERATOR: {f"main.{k.removeprefix('net.')}": v for k, v in net.state_dict().items()}}
