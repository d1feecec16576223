"""Every weights file ``anime weights`` manages: the registered styles plus the core's backbones.

Plain data only: listing the catalog imports no torch (``anime weights list`` answers at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from anime_core.errors import unknown
from anime_core.specs import WeightsSource
from anime_core.weights.known import known_weights

if TYPE_CHECKING:
    from anime_core.registry import Registry


@dataclass(frozen=True)
class CatalogEntry:
    key: str  # "animegan:paprika", "backbone:vgg19"
    source: WeightsSource
    description: str = ""
    license: str = ""


def catalog(registry: Registry) -> dict[str, CatalogEntry]:
    """Styles (``model:style``), face detectors (``detector:name``) and backbone/metric weights (``backbone:name``)."""
    entries = {
        key: CatalogEntry(key, style.source, style.description, style.license) for key, style in registry.styles.items()
    }
    for det in registry.detectors.values():
        if det.source is not None:
            entries[det.key] = CatalogEntry(det.key, det.source, det.description or "face detector", det.license)
    for key, source in known_weights().items():
        entries[key] = CatalogEntry(key, source, "pretrained backbone used by losses or metrics")
    return dict(sorted(entries.items()))


def entry(registry: Registry, key: str) -> CatalogEntry:
    entries = catalog(registry)
    if key not in entries:
        raise unknown("weights", key, entries)
    return entries[key]


def foreign_layouts(registry: Registry, model: str) -> list[str]:
    """One line per checkpoint layout ``anime run MODEL --weights`` accepts besides native safetensors."""
    return [f"{c.name}: {c.description}".rstrip(": ") for c in registry.converters_of(model)]
