"""Pretrained AnimeGAN styles: the paper's own Hayao weights, and the AnimeGANv2 generators ported to PyTorch.

``hayao`` is the v1 network of the paper (G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight
GAN for photo animation", section 4.1: trained on frames of Miyazaki Hayao's "The Wind Rises"), as
the authors published it in TachibanaYoshino/AnimeGAN: a TensorFlow 1 checkpoint of two files,
each pinned by its git blob SHA-1 in the repository's tree (``animegan.v1-tf`` layout).

The others are the AnimeGANv2 PyTorch port (bryandlee/animegan2-pytorch): ``.pt`` state dicts in
the ``animegan.v2-pytorch`` layout, verified by their git blob SHA-1. ``paprika`` is AnimeGANv2's
Paprika (Kon Satoshi) scenery style; the ``face_paint_512_*`` and ``celeba_distill`` styles were
trained on 512 px faces, so they default to a centre crop resized to 512, and name the FFHQ 512 px
template they were trained on (``--faces`` aligns each face of a photo to it). The official AnimeGANv2
TensorFlow checkpoints (Hayao, Shinkai, Paprika) load with ``--weights`` but are not styles: no
published hash of their ``.data`` files could be found.
"""

from __future__ import annotations

from anime_core.specs import FFHQ_512, StyleSpec, WeightsFile, WeightsSource

#: the checkpoint layout of the AnimeGANv2 PyTorch port (converter in :mod:`.converters`)
LAYOUT_V2 = "animegan.v2-pytorch"
#: the official TensorFlow 1 checkpoints of AnimeGAN (v1, the paper) and AnimeGANv2 (:mod:`.converters_tf`)
LAYOUT_V1_TF = "animegan.v1-tf"
LAYOUT_V2_TF = "animegan.v2-tf"
HAYAO_URL = "https://github.com/TachibanaYoshino/AnimeGAN/raw/master/checkpoint/generator_Hayao_weight"
LICENSE_V1 = (
    "AnimeGAN weights (TachibanaYoshino/AnimeGAN): non-commercial use only (academic research, teaching, "
    "publications) under the authors' license; ask the authors for commercial use."
)
BASE_URL = "https://github.com/bryandlee/animegan2-pytorch/raw/main/weights"
LICENSE = (
    "AnimeGANv2 weights: non-commercial use only under the original authors' terms (TachibanaYoshino/"
    "AnimeGANv2; PyTorch port bryandlee/animegan2-pytorch); ask the authors before commercial use."
)
FACE = {"size": 512, "center_crop": True}

#: name -> (git blob SHA-1, preprocess defaults, description)
_STYLES = {
    "paprika": ("58086c9db9fc7a9e5c2876ca31b8079599352643", {}, "Paprika (Kon Satoshi) style, scenes"),
    "face_paint_512_v2": ("d75102f8f201ddaf8dbe6b913b1a97585b55f838", FACE, "face portrait style v2, 512 px faces"),
    "face_paint_512_v1": ("19c1a1da4d9580186109a2b055d91044e5127de6", FACE, "face portrait style v1, 512 px faces"),
    "celeba_distill": ("3b7ea61b02254980831cc3bc77af30666dbc999c", FACE, "CelebA face style (distilled)"),
}


def hayao() -> StyleSpec:
    """The paper's network in the Miyazaki Hayao style: the authors' ``Hayao-60`` TF checkpoint (two files)."""
    return StyleSpec(
        model="animegan",
        name="hayao",
        source=WeightsSource.of(
            WeightsFile(f"{HAYAO_URL}/Hayao-60.ckpt.index", git_sha1="36907806b09cb6e244576eb36e0fe3137fc64ee0",
                        size=5565),
            # 3,956,096 float32 values at the offsets the index (pinned above) gives, nothing else
            WeightsFile(f"{HAYAO_URL}/Hayao-60.ckpt.data-00000-of-00001",
                        git_sha1="f4e7d3e5eba35bd5fbe0e8b2ea57565f4b49b2a7", size=15_824_384),
            layout=LAYOUT_V1_TF,
        ),
        generator={"variant": "v1", "resize": "tf1_legacy", "dsconv_eps": 1e-6},
        license=LICENSE_V1,
        description="AnimeGAN (the paper's v1 network) Miyazaki Hayao style, official TensorFlow weights",
    )


def styles() -> list[StyleSpec]:
    return [hayao()] + [
        StyleSpec(
            model="animegan",
            name=name,
            source=WeightsSource(url=f"{BASE_URL}/{name}.pt", git_sha1=sha1, layout=LAYOUT_V2),
            generator={"variant": "v2"},
            preprocess=dict(pre),
            license=LICENSE,
            description=f"AnimeGANv2 {desc}",
            face=FFHQ_512 if pre is FACE else None,
        )
        for name, (sha1, pre, desc) in _STYLES.items()
    ]
