"""The small public Python API (DESIGN.md "Public Python API").

import anime_core
anime_core.list_models()
g = anime_core.build("animegan", "generator", variant="v1")
pipe = anime_core.load("animegan", style="paprika")   # or weights="file.safetensors"
pipe(pil_image)                 # translate models
pipe.generate(n=16, seed=0)     # generate models
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anime_core.errors import UsageError
from anime_core.registry import Registry, get_registry

if TYPE_CHECKING:  # torch loads with the first build or load, not with ``import anime_core``
    from torch import nn

    from anime_core.inference.pipeline import Pipeline


def list_models(registry: Registry | None = None) -> list[str]:
    """Names of all registered models, sorted."""
    return sorted((registry or get_registry()).models)


def build(model: str, part: str = "generator", **overrides: Any) -> nn.Module:
    """An ``nn.Module`` from the registry with the model's default options, ``overrides`` applied.

    The one public builder: ``anime_core.build("cyclegan", "discriminator", width=32)``.
    """
    return get_registry().build(model, part, **overrides)



def load(
    model: str,
    style: str | None = None,
    weights: str | Path | None = None,
    device: str | None = None,
    precision: str = "fp32",
    **options: Any,
) -> Pipeline:
    """A ready pipeline for ``model`` with a pretrained ``style`` or a ``weights`` file.

    Styles download (verified) on first use; ``weights`` may be native safetensors or a foreign
    ``.pt``/``.pth`` whose layout a plugin converter recognises. ``options`` go to the model's
    pipeline (e.g. ``strength=0.5`` for ``ae``, ``direction="anime2photo"`` for ``cyclegan``).
    """
    from anime_core.inference.pipeline import GeneratePipeline, TranslatePipeline
    from anime_core.weights import fetch_style, load_weights

    reg = get_registry()
    spec = reg.model(model)
    if style and weights:
        raise UsageError("give either a style or a weights file, not both")
    preprocess: dict[str, Any] = {}
    generator_options: dict[str, Any] = {}
    loaded = None
    if style:
        st = reg.style(model, style)
        loaded = load_weights(fetch_style(st), model, reg)
        generator_options = dict(st.generator)
        preprocess = dict(st.preprocess)
    elif weights:
        loaded = load_weights(weights, model, reg)
    else:
        styles = sorted(reg.styles_of(model))
        hint = f"--style ({', '.join(styles)}) or " if styles else ""
        raise UsageError(
            f"'{model}' needs pretrained weights: pass {hint}--weights FILE (e.g. from 'anime train {model}')"
        )
    cls = spec.pipeline_class() or (TranslatePipeline if spec.kind == "translate" else GeneratePipeline)
    return cls.from_weights(
        spec, reg, loaded, generator_options, device=device, precision=precision, preprocess=preprocess, **options
    )
