"""A throwaway plugin for the core's tests: two tiny models through the real hooks.

``tiny`` (translate): a 3-layer local conv net trained with LSGAN + L1 on unpaired data, with a
typed config (:mod:`.config`). ``tinygen`` (generate): a 2-layer transposed-conv generator from an
8-d latent, without a schema.

Like every entry-point module this one imports no torch: specs name their code by reference. The
nets and tasks live in :mod:`.nets` and :mod:`.task`; the package hands them out on first access
(``tiny_anime_plugin.TinyGenerator``), which is what the references point at, so the tests and
``anime info`` keep one short name for each.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from anime_core import hookimpl
from anime_core.specs import (
    DiscriminatorSpec,
    GeneratorSpec,
    ModelSpec,
    StyleSpec,
    WeightsConverter,
    WeightsSource,
)

HERE = Path(__file__).parent
PKG = "tiny_anime_plugin"
_LAZY = {
    "TinyGenerator": "nets",
    "TinyDiscriminator": "nets",
    "TinyGen": "nets",
    "TinyTask": "task",
    "TinyGenTask": "task",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{PKG}.{_LAZY[name]}"), name)
    raise AttributeError(f"module '{PKG}' has no attribute '{name}'")


@hookimpl
def anime_register_generators():  # type: ignore[no-untyped-def]
    return [
        GeneratorSpec("tiny.g", f"{PKG}:TinyGenerator", "3-layer local conv net"),
        GeneratorSpec("tinygen.g", f"{PKG}:TinyGen"),
    ]


@hookimpl
def anime_register_discriminators():  # type: ignore[no-untyped-def]
    return [DiscriminatorSpec("tiny.d", f"{PKG}:TinyDiscriminator")]


@hookimpl
def anime_register_models():  # type: ignore[no-untyped-def]
    return [
        ModelSpec(
            "tiny",
            "translate",
            "tiny.g",
            "tiny.d",
            task=f"{PKG}:TinyTask",
            config=HERE / "configs" / "tiny.yaml",
            schema=f"{PKG}.config:TinyConfig",
            presets={"wide": HERE / "configs" / "wide.yaml"},
            dataset="unpaired",
            paper="test fixture",
            description="tiny translate model for tests",
        ),
        ModelSpec(
            "tinygen",
            "generate",
            "tinygen.g",
            task=f"{PKG}:TinyGenTask",
            config=HERE / "configs" / "tinygen.yaml",
            dataset="images",
            paper="test fixture",
            description="tiny generate model for tests",
        ),
    ]


@hookimpl
def anime_register_styles():  # type: ignore[no-untyped-def]
    url = os.environ.get("TINY_STYLE_URL", "http://127.0.0.1:9/tiny-style.safetensors")
    sha = os.environ.get("TINY_STYLE_SHA256", "0" * 64)
    return [
        StyleSpec(
            "tiny",
            "demo",
            WeightsSource(url, sha256=sha, filename="tiny-style.safetensors"),
            preprocess={"size": 24},
            license="test only",
        )
    ]


@hookimpl
def anime_weights_converters():  # type: ignore[no-untyped-def]
    return [
        WeightsConverter("tiny.legacy", "tiny", f"{PKG}.nets:legacy_matches", f"{PKG}.nets:legacy_convert",
                         "legacy.* keys")
    ]
