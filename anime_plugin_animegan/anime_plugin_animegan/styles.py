"""Pretrained AnimeGAN styles: the AnimeGANv2 generators ported to PyTorch (bryandlee/animegan2-pytorch).

Weights are the published ``.pt`` state dicts in the ``animegan.v2-pytorch`` layout, verified by
their git blob SHA-1 (what GitHub publishes). ``paprika`` is AnimeGANv2's Paprika (Kon Satoshi)
scenery style; the ``face_paint_512_*`` and ``celeba_distill`` styles were trained on 512 px faces,
so they default to a centre crop resized to 512.
"""

from __future__ import annotations

from anime_core.specs import StyleSpec, WeightsSource

#: the checkpoint layout of the AnimeGANv2 PyTorch port (converter in :mod:`.converters`)
LAYOUT_V2 = "animegan.v2-pytorch"
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


def styles() -> list[StyleSpec]:
    return [
        StyleSpec(
            model="animegan",
            name=name,
            source=WeightsSource(url=f"{BASE_URL}/{name}.pt", git_sha1=sha1, layout=LAYOUT_V2),
            generator={"variant": "v2"},
            preprocess=dict(pre),
            license=LICENSE,
            description=f"AnimeGANv2 {desc}",
        )
        for name, (sha1, pre, desc) in _STYLES.items()
    ]
