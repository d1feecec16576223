"""The file-handling options of a run (``anime run``'s flags, the web app's fields, ``anime_core.run``'s keywords)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anime_core.inference import io, video

if TYPE_CHECKING:
    from accelerate import PartialState


@dataclass(frozen=True)
class FileOptions:
    """The file-handling options of ``anime run``."""

    output: Path | None = None
    size: int | None = None
    tile: int | None = None
    batch_size: int = 1
    side_by_side: bool = False
    max_pixels: int = io.DEFAULT_MAX_PIXELS
    progress: bool = True
    deflicker: bool = False  # videos and animations: see anime_core.inference.temporal
    keep_partial: bool = False  # a damaged video keeps the frames decoded before the damage
    encode: video.EncodeOptions = field(default_factory=video.EncodeOptions)
    #: receives a line per image above ``ETA_PIXELS`` on a CPU (size and estimated time); ``None``: silent
    announce: Callable[[str], None] | None = None
    #: batches decoded ahead (worker threads; outputs are written by others while the model runs); 0: one thread
    prefetch: int = 2
    #: inputs whose planned output already exists are not run (counted as skipped): continues an interrupted run
    skip_existing: bool = False
    #: accelerate's state under ``accelerate launch`` (see :func:`process_state`): this process does its share
    processes: PartialState | None = None
