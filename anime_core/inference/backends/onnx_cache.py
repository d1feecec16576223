"""The ONNX Runtime backend for torch weights: the generator exported once, verified, then cached.

:func:`to_onnxruntime` turns a torch pipeline into the same pipeline class running on ONNX
Runtime. The export (:func:`.onnx_export.build_verified`) is kept in ``$ANIME_HOME/onnx`` under a
digest of the generator's tensors, classes, options and precision (:func:`_digest`), with its
sha256 beside it in ``sha256sum`` format (:func:`_sidecar`): a cached file that no longer matches
is rebuilt, with one note per process (:func:`_cache_state`).

:data:`BACKEND` is the ``onnxruntime`` :class:`~.base.Backend`: graph files through
:func:`.onnx_runtime.onnx_pipeline`, torch weights through :func:`to_onnxruntime`. It lives here,
the top of the ONNX modules (runtime <- quant <- export <- segments <- cache), so no module imports back.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from anime_core.errors import UsageError
from anime_core.fsutil import write_bytes_atomic
from anime_core.inference.backends.onnx_export import build_verified
from anime_core.inference.backends.onnx_runtime import FORMAT_VERSION, onnx_pipeline
from anime_core.inference.backends.onnx_segments import SegmentTiles, ort_runner
from anime_core.inference.precision import module_digest
from anime_core.weights.store import anime_home

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec


def to_onnxruntime(pipe: Pipeline, cls: type[Pipeline], device: str | torch.device | None = None,
                   threads: int | None = None, cache: Path | None = None, **kwargs: Any) -> Pipeline:
    """``pipe`` (torch) as the same pipeline class running on ONNX Runtime.

    The graph is exported and verified once, then kept in ``cache`` (default
    ``$ANIME_HOME/onnx``) under a digest of the generator's tensors, class, options and precision,
    with its sha256 beside it: a cached file that no longer matches is rebuilt (with one note).
    Images that need tiles run exactly on ONNX Runtime: the segments of a cut export between the
    torch pipeline's norms, with its plan (:mod:`.onnx_segments`).
    """
    precision = pipe.precision
    if precision not in BACKEND.precisions:
        raise UsageError(f"the onnxruntime backend runs fp32 or fp16 graphs, not {precision}")
    graph = onnx_pipeline(cls, pipe.spec, cached_export(pipe, precision, cache), device, "fp32", pipe.defaults,
                          threads, f"the ONNX export of {pipe.spec.name}", **kwargs)
    if pipe.kind == "translate":  # images that need tiles: the cut export's segments on ONNX Runtime, exact
        dev = graph.device
        graph.tile_source = SegmentTiles(pipe, cut_store(pipe, cache), lambda g: ort_runner(g, threads, dev))
    return graph


def cached_export(pipe: Pipeline, precision: str = "fp32", cache: Path | None = None) -> Path | bytes:
    """The verified ONNX export of ``pipe``'s generator in ``precision`` from the export cache (``cache``, default
    ``$ANIME_HOME/onnx``), exported once when missing or damaged: a path, or the graph's bytes where the cache
    cannot be written. ONNX Runtime and OpenVINO share it."""
    folder = cache or anime_home() / "onnx"
    path = folder / f"{pipe.spec.name}-{_digest(pipe, precision)}.onnx"
    return _cached(path, lambda: build_verified(pipe, precision=precision)[0].SerializeToString())


def cut_store(pipe: Pipeline, cache: Path | None = None) -> Callable[[str, Callable[[], bytes]], bytes]:
    """Where the cut exports of ``pipe`` (:mod:`.onnx_segments`) are kept: beside its export, ``-<tag>`` added.

    ``store(tag, build)`` returns the graph's bytes, built (and verified by ``build``) when missing or damaged.
    """
    folder = cache or anime_home() / "onnx"

    def store(tag: str, build: Callable[[], bytes]) -> bytes:
        got = _cached(folder / f"{pipe.spec.name}-{_digest(pipe, 'fp32')}-{tag}.onnx", build)
        return got if isinstance(got, bytes) else got.read_bytes()

    return store


def _cached(path: Path, build: Callable[[], bytes]) -> Path | bytes:
    """``path`` when its sha256 matches its sidecar, else ``build()``'s bytes, written atomically (when it can be)."""
    state = _cache_state(path)
    if state == "ok":
        return path
    graph = build()
    with contextlib.suppress(OSError):  # a read-only cache still runs, from memory
        write_bytes_atomic(path, graph)
        write_bytes_atomic(_sidecar(path), f"{hashlib.sha256(graph).hexdigest()}  {path.name}\n".encode())
    if state == "damaged" and path not in _NOTED:
        _NOTED.add(path)
        print(f"note: cached ONNX export {path} was damaged; rebuilt", file=sys.stderr)
    return graph


_NOTED: set[Path] = set()  # damaged cached exports already reported in this process


def _sidecar(path: Path) -> Path:
    """Where the sha256 of a cached export is kept (``sha256sum`` format), written after the graph."""
    return path.with_name(path.name + ".sha256")


def _cache_state(path: Path) -> str:
    """``"ok"`` (its sha256 matches the one stored beside it), ``"missing"`` or ``"damaged"``.

    No readable sidecar (a cache from before sidecars, or a crash between the two writes) is
    ``"missing"``: rebuilt quietly. A mismatch (a truncated or altered file) is ``"damaged"``.
    """
    if not path.is_file():
        return "missing"
    try:
        want = _sidecar(path).read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return "missing"
    try:
        with path.open("rb") as fh:
            got = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return "damaged"
    return "ok" if got == want else "damaged"


def _digest(pipe: Pipeline, precision: str) -> str:
    """Tensors, classes and plain attributes of every submodule (options such as an up-sampling mode)."""
    part = type(pipe).weights_part(pipe.options)
    prefix = f"{precision}|{part}|{torch.__version__}|{FORMAT_VERSION}|{type(pipe).__qualname__}"
    return module_digest(pipe, prefix)[:20]


class OnnxRuntimeBackend:
    """:class:`~anime_core.inference.backends.base.Backend` for ONNX Runtime (CPU, or CUDA with onnxruntime-gpu)."""

    name = "onnxruntime"
    devices = ("cpu", "cuda")
    precisions = ("fp32", "fp16")  # of an export made from torch weights; a graph file keeps its own
    suffixes = (".onnx",)

    def from_torch(self, pipe: Pipeline, cls: type[Pipeline], device: str | None = None,
                   **options: Any) -> Pipeline:
        return to_onnxruntime(pipe, cls, device, **options)

    def open(self, cls: type[Pipeline], spec: ModelSpec, path: str | Path | bytes, device: str | None = None,
             precision: str = "fp32", preprocess: dict[str, Any] | None = None, **options: Any) -> Pipeline:
        return onnx_pipeline(cls, spec, path, device, precision, preprocess, **options)


BACKEND = OnnxRuntimeBackend()
