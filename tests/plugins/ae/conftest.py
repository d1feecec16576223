"""Fixtures of the ae plugin tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The nets here are tiny: one intra-op thread is faster than two on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry():
    """The registry with the installed ae plugin (found through its entry point)."""
    from anime_core.registry import load_registry, set_registry

    reg = load_registry()
    assert "ae" in reg.models, reg.load_errors
    set_registry(reg)
    yield reg
    set_registry(None)
