"""Backends are one concept: each registered name is a :class:`Backend`, and the ONNX modules depend one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anime_core
from anime_core.errors import UsageError
from anime_core.inference import backends
from anime_core.inference.backends.base import Backend

ROOT = Path(anime_core.__file__).parent / "inference" / "backends"
#: each ONNX module may import only those before it (runtime <- quant <- export <- segments <- cache)
ONNX_ORDER = ["onnx_guard", "onnx_runtime", "onnx_quant", "onnx_export", "onnx_segments", "onnx_cache"]


@pytest.mark.parametrize("name", list(backends.NAMES))
def test_every_backend_exposes_the_one_interface(name):
    backend = backends.get(name)
    assert isinstance(backend, Backend) and backend.name == name
    assert "fp32" in backend.precisions and set(backend.precisions) <= {"fp32", "fp16", "bf16"}
    assert "cpu" in backend.devices and set(backend.devices) <= {"cpu", "cuda", "mps"}
    assert all(s.startswith(".") and s == s.lower() for s in backend.suffixes)


def test_load_names_the_backends_for_an_unknown_one():
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'; use auto, torch, onnxruntime, openvino"):
        anime_core.load("animegan", weights="unused.safetensors", backend="tensorrt")


def test_torch_refuses_a_graph_file():
    spec = anime_core.registry.get_registry().model("animegan")
    with pytest.raises(UsageError, match="runs with --backend onnxruntime"):
        backends.get("torch").open(anime_core.api.pipeline_class(spec), spec, "x.onnx")


def test_the_onnx_modules_import_one_way_only():
    """Not even inside functions: the runtime never reaches up to export, quantization or the cache."""
    for k, name in enumerate(ONNX_ORDER):
        tree = ast.parse((ROOT / f"{name}.py").read_text())
        imported = {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name.rsplit(".", 1)[-1] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     for a in n.names}
        later = set(ONNX_ORDER[k + 1:]) & imported
        assert not later, f"{name} imports {sorted(later)}"
