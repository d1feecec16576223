"""What a contract run found (:class:`Report`), what it runs on (:class:`Subject`) and small shared helpers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anime_core import registry as registry_module
from anime_core.registry import Registry


@dataclass
class Report:
    """What the contract found for one plugin: ``problems`` fail it, ``skipped`` explains what it could not check."""

    plugin: str
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    registry: Registry | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [f"plugin '{self.plugin}' breaks the anime-core plugin contract:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class Subject:
    """The plugin under test: its name, its hook object, its entry-point module and its isolated registry."""

    name: str
    obj: object
    module: str | None  # what the light-import check imports afresh; None for a plugin object
    registry: Registry

    def own(self, table: Mapping[str, Any]) -> list[Any]:
        """The specs of ``table`` that this plugin registered."""
        return [spec for spec in table.values() if spec.plugin == self.name]


def err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """``ANIME_OFFLINE=1`` inside: a check that would download fails fast instead."""
    old = os.environ.get("ANIME_OFFLINE")
    os.environ["ANIME_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ANIME_OFFLINE", None)
        else:
            os.environ["ANIME_OFFLINE"] = old


@contextlib.contextmanager
def process_registry(reg: Registry) -> Iterator[None]:
    """Make ``reg`` the process registry inside, so config validation and tasks see the plugin's own losses."""
    with registry_module.using_registry(reg):
        yield


def no_pretrained(cfg: Any) -> Any:
    """A copy of ``cfg`` with every boolean ``*pretrained*`` key set to false, so nothing downloads."""
    if isinstance(cfg, Mapping):
        return {
            k: (False if "pretrained" in str(k) and isinstance(v, bool) else no_pretrained(v)) for k, v in cfg.items()
        }
    return cfg


def with_sample_data(cfg: dict[str, Any], folder: Path, n: int = 6, side: int = 128) -> dict[str, Any]:
    """``cfg`` with unset ``data.photo``/``data.anime`` pointing at ``n`` small random images in ``folder``."""
    import numpy as np
    from PIL import Image

    data = dict(cfg.get("data") or {})
    rng = np.random.default_rng(0)
    for key in ("photo", "anime"):
        if data.get(key) is None:
            (folder / key).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / key / f"{i}.png")
            data[key] = str(folder / key)
    return {**cfg, "data": data}
