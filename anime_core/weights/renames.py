"""Renaming foreign state-dict keys module by module: the step every PyTorch-layout converter shares.

A converter maps each foreign module prefix (``"model.1."``) to a native one (``"features.0."``);
parameter names below a module (``weight``, ``bias``) are the same in both layouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")


def rename_modules(state: Mapping[str, V], renames: Mapping[str, str]) -> tuple[dict[str, V], list[str]]:
    """``state`` under the native module names of ``renames``, and the foreign keys no rename covers."""
    out: dict[str, V] = {}
    left: list[str] = []
    for key, value in state.items():
        owner, _, leaf = key.rpartition(".")
        native = renames.get(f"{owner}.")
        if native is None:
            left.append(key)
        else:
            out[f"{native}{leaf}"] = value
    return out, left
