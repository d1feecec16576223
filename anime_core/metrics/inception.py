"""The standard Inception-v3 feature extractor for FID, KID, IS and precision/recall.

The papers' distribution metrics (Sharma & Das, CycleGAN with U-Net and self-attention, Tables 2-3;
Shrivastava et al., PixelSake, section 4) are defined on the
TensorFlow Inception-v3 graph of 2015-12-05 (``pool_3``: 2048 features; ``logits``: 1008
classes), not on torchvision's retrained Inception. torch-fidelity ships a bit-exact PyTorch
port of that graph (``FeatureExtractorInceptionV3``, TF1-compatible bilinear resize to 299 px),
so its numbers are comparable with the published ones; we use it as is.

Its weights go through the core's verified cache (``anime weights pull|import
backbone:inception``), never torch-fidelity's own unverified download, and are read with
``torch.load(weights_only=True)`` (torch-fidelity's loader would unpickle them).
"""

from __future__ import annotations

from collections.abc import Mapping
from unittest import mock

import torch
from torch import nn

from anime_core.weights.known import INCEPTION_KEY, INCEPTION_SOURCE

#: torch-fidelity's conversion of the TF Inception graph used by the original FID/IS code
#: features the metrics read: pool_3 (FID, KID, precision/recall) and the unbiased logits (IS)
POOL, LOGITS = "2048", "logits_unbiased"


def torch_fidelity_version() -> str:
    from torch_fidelity.version import __version__

    return __version__


class InceptionV3Features(nn.Module):
    """Frozen TF Inception-v3: uint8 images (N, 3, H, W), any size -> ``{"pool": (N, 2048), "logits": (N, 1008)}``.

    ``state`` gives the weights directly (tests); by default they come verified from the cache
    under ``backbone:inception`` (a :class:`~anime_core.errors.WeightsUnavailable` if absent).
    """

    name = "inception-v3-tf-2015-12-05 (torch-fidelity)"

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        try:
            from torch_fidelity import feature_extractor_inceptionv3 as tfi
        except ImportError as exc:  # pragma: no cover - depends on the install
            from anime_core.errors import UsageError

            raise UsageError(
                "FID/KID/IS/precision-recall need torch-fidelity; run 'pip install torch-fidelity'"
            ) from exc
        if state is None:
            state = load_inception_state()
        # torch-fidelity loads weights inside __init__ from a URL or an unpickled file; hand it the
        # verified, safely loaded state instead of either.
        with mock.patch.object(tfi, "load_state_dict_from_url", return_value=dict(state)):
            self.net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", [POOL, LOGITS])
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> InceptionV3Features:  # always frozen in eval mode
        return super().train(False)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pool, logits = self.net(images)
        return {"pool": pool, "logits": logits}


def load_inception_state() -> dict[str, torch.Tensor]:
    """The verified Inception weights from the cache (downloads unless offline)."""
    from anime_core.weights import fetch
    from anime_core.weights.files import read_state

    state, _ = read_state(fetch(INCEPTION_KEY, INCEPTION_SOURCE))
    return state
