"""The core's built-in plugin: losses, dataset kinds and the face detector, through the same hooks as any plugin.

Like every entry-point module it imports no torch: specs name their code by reference.
"""

from __future__ import annotations

from anime_core.hookspecs import hookimpl
from anime_core.specs import DatasetSpec, DetectorSpec, LossSpec
from anime_core.weights.known import RETINAFACE_SOURCE

LOSSES = "anime_core.losses"
KINDS = "anime_core.training.kinds"
PHOTO, ANIME = "data.photo", "data.anime"  # the folders a dataset kind reads (DatasetSpec.keys)


@hookimpl
def anime_register_losses() -> list[LossSpec]:
    return [
        LossSpec("lsgan", f"{LOSSES}:LSGANLoss", "least squares GAN loss (Mao et al., LSGAN, 3.2)", adversarial=True),
        LossSpec("bce", f"{LOSSES}:BCELoss", "BCE on logits, non-saturating G (Goodfellow, GAN, 3)", adversarial=True),
        LossSpec("hinge", f"{LOSSES}:HingeLoss", "hinge GAN loss (Lim & Ye, Geometric GAN)", adversarial=True),
        LossSpec("wgan", f"{LOSSES}:WGANLoss", "Wasserstein critic loss; add gradient_penalty (WGAN-GP)",
                 adversarial=True),
        LossSpec("l1", f"{LOSSES}:L1Loss", "mean absolute error"),
        LossSpec("huber", f"{LOSSES}:HuberLoss", "Huber / smooth L1 loss"),
        LossSpec("feature_matching", f"{LOSSES}:FeatureMatchingLoss", "L1 between real and fake feature lists"),
    ]


@hookimpl
def anime_register_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("images", f"{KINDS}:images", "one folder of images (data.anime); class sub-folders if conditional",
                    keys=(f"{ANIME}|{PHOTO}",)),  # data.anime, else data.photo (a style-transfer net trains on photos)
        DatasetSpec("unpaired", f"{KINDS}:unpaired", "photo and anime folders without correspondence",
                    keys=(PHOTO, ANIME)),
        DatasetSpec("paired", f"{KINDS}:paired", "photo and anime folders with matching file names",
                    keys=(PHOTO, ANIME)),
        DatasetSpec("noise", f"{KINDS}:noise", "latent vectors z (generator.latent_dim), reproducible per index"),
    ]


@hookimpl
def anime_register_detectors() -> list[DetectorSpec]:
    return [
        DetectorSpec("retinaface", "anime_core.faces.detect:build_retinaface", RETINAFACE_SOURCE,
                     "RetinaFace MobileNet-0.25 on ONNX Runtime (Deng et al., CVPR 2020), AnimeGANv3's portrait "
                     "detector", license="MIT (biubug6/Pytorch_Retinaface)"),
    ]
