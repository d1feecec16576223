"""The torch backend: the pipeline as :func:`anime_core.load` builds it, eager PyTorch on any torch device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anime_core.errors import UsageError
from anime_core.inference.pipeline import PRECISIONS

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec


class TorchBackend:
    """:class:`~anime_core.inference.backends.base.Backend` for PyTorch itself."""

    name = "torch"
    devices = ("cpu", "cuda", "mps")
    precisions = tuple(PRECISIONS)
    suffixes: tuple[str, ...] = ()  # weights files go through anime_core.api (conversion, variants)

    def from_torch(self, pipe: Pipeline, cls: type[Pipeline], device: str | None = None,
                   **options: Any) -> Pipeline:
        return pipe

    def open(self, cls: type[Pipeline], spec: ModelSpec, path: str | Path | bytes, device: str | None = None,
             precision: str = "fp32", preprocess: dict[str, Any] | None = None, **options: Any) -> Pipeline:
        what = "the graph" if isinstance(path, bytes) else str(path)
        raise UsageError(f"{what} is a graph, which runs with --backend onnxruntime, not torch")


BACKEND = TorchBackend()
