"""Every weights file ``anime weights`` manages: the registered styles plus the core's backbones."""

from __future__ import annotations

from dataclasses import dataclass

from anime_core.errors import unknown
from anime_core.registry import Registry
from anime_core.specs import WeightsSource


@dataclass(frozen=True)
class CatalogEntry:
    key: str  # "animegan:paprika", "backbone:vgg19"
    source: WeightsSource
    description: str = ""
    license: str = ""


def catalog(registry: Registry) -> dict[str, CatalogEntry]:
    """Styles (``model:style``) and backbone/metric weights (``backbone:name``), by key."""
    from anime_core import backbones

    entries = {
        key: CatalogEntry(key, style.source, style.description, style.license) for key, style in registry.styles.items()
    }
    known = dict(backbones.known_weights())
    try:  # the metrics package adds the Inception weights when present
        from anime_core.metrics import known_weights as metric_weights

        known.update(metric_weights())
    except ImportError:
        pass
    for key, source in known.items():
        entries[key] = CatalogEntry(key, source, "pretrained backbone used by losses or metrics")
    return dict(sorted(entries.items()))


def entry(registry: Registry, key: str) -> CatalogEntry:
    entries = catalog(registry)
    if key not in entries:
        raise unknown("weights", key, entries)
    return entries[key]
