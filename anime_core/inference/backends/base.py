"""What an inference backend is: one interface for torch, ONNX Runtime and the backends to come.

A backend runs a model's generator inside the model's own pipeline class (pre/post-processing,
padding, tiling, batching stay the pipeline's, so every backend gives the same images up to its
arithmetic). It says which devices and precisions it runs, and offers two ways in:

- :meth:`Backend.from_torch`: the generator of a torch pipeline (built from a weights file or a
  style) moved onto this backend; torch returns the pipeline as it is, ONNX Runtime exports it
  once, verified, and caches the graph (:mod:`.onnx_cache`);
- :meth:`Backend.open`: a file in the backend's own format (``suffixes``, e.g. an ``.onnx`` graph
  exported by ``anime export`` or by a third party) in the model's pipeline class.

Light: no torch at import, so the CLI can list the backends' names in ``--help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from anime_core.errors import AnimeError

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline
    from anime_core.specs import ModelSpec


class ExportError(AnimeError):
    """The exported graph does not reproduce the PyTorch generator (exit 1); nothing was written."""


@runtime_checkable
class Backend(Protocol):
    """What :func:`anime_core.load` needs of a backend (see the module doc)."""

    #: the ``--backend`` / ``backend=`` name
    name: str
    #: torch device types it runs on (``cpu``, ``cuda``, ``mps``)
    devices: tuple[str, ...]
    #: the ``--precision`` values :meth:`from_torch` accepts
    precisions: tuple[str, ...]
    #: file suffixes :meth:`open` runs as they are (lower case, with the dot); empty for torch
    suffixes: tuple[str, ...]

    def from_torch(self, pipe: Pipeline, cls: type[Pipeline], device: str | None = None,
                   **options: Any) -> Pipeline:
        """``pipe``'s generator on this backend, in a pipeline of class ``cls`` with ``options``."""
        ...

    def open(self, cls: type[Pipeline], spec: ModelSpec, path: str | Path | bytes, device: str | None = None,
             precision: str = "fp32", preprocess: dict[str, Any] | None = None, **options: Any) -> Pipeline:
        """A file in this backend's own format (``suffixes``) run by ``spec``'s pipeline class ``cls``."""
        ...
