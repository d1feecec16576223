"""Foreign checkpoint layouts of AnimeGAN weights.

``animegan.v2-pytorch``: the AnimeGANv2 PyTorch state dicts (``paprika.pt``, ``face_paint_512_v2.pt``
...), keys ``block_a.0.1.weight`` ... ``out_layer.0.weight``. :class:`~.generator.GeneratorV2`
reproduces those keys, so conversion only strips a ``module.`` prefix (DataParallel saves) and
selects the v2 variant; the layout is recognised from the keys alone, so ``anime run animegan
--weights FILE.pt`` needs no variant option.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from anime_plugin_animegan.styles import LAYOUT_V2  # noqa: F401  (re-exported)


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
