"""Inference backends side by side under one interface (:class:`~.base.Backend`), in modules by job.

=================  ==============================================================================
``base``           the :class:`~.base.Backend` protocol and :class:`~.base.ExportError` (light)
``torch``          the torch backend: the pipeline as built (eager PyTorch)
``onnx_runtime``   ONNX Runtime: sessions, providers, :class:`~.onnx_runtime.OnnxGenerator` (a graph
                   in the torch generator's place), :func:`~.onnx_runtime.onnx_pipeline`
``onnx_guard``     bounds on a graph from outside, checked before ONNX Runtime runs a node of it
``onnx_export``    export with parity verification and the graph's metadata (:func:`~.onnx_export.export`)
``onnx_quant``     static int8 quantization checked on photos (:func:`~.onnx_quant.quantize_int8`)
``onnx_segments``  exact tiles on a graph backend: the export cut at each norm, run segment by segment
                   (:class:`~.onnx_segments.SegmentedGenerator`)
``onnx_cache``     ``--backend onnxruntime`` for torch weights: export once, cache by digest
                   (:func:`~.onnx_cache.to_onnxruntime`, :func:`~.onnx_cache.cached_export`)
``openvino``       OpenVINO's CPU plugin on the same cached export (``anime-core[openvino]``)
=================  ==============================================================================

This package's ``__init__`` stays light (no torch): :func:`get` imports a backend's module on
first use, so ``anime --help`` can list :data:`NAMES` without loading torch or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from anime_core.errors import UsageError

if TYPE_CHECKING:
    from anime_core.inference.backends.base import Backend

#: backend name -> the module whose ``BACKEND`` implements it
NAMES = {
    "torch": "anime_core.inference.backends.torch",
    "onnxruntime": "anime_core.inference.backends.onnx_cache",
    "openvino": "anime_core.inference.backends.openvino",
}


def get(name: str) -> Backend:
    """The backend called ``name`` (a usage error naming the others when there is none)."""
    if name not in NAMES:
        raise UsageError(f"unknown backend '{name}'; use {' or '.join(NAMES)}")
    return importlib.import_module(NAMES[name]).BACKEND  # type: ignore[no-any-return]
