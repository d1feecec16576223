"""Image folders for ``anime eval``: decoding, batched feature extraction (listing and pairing by name:
:mod:`anime_core.files`).

Images are decoded like ``anime run`` does (EXIF orientation, any mode -> RGB); an unreadable file is
reported with its reason and skipped. ``size`` scales every image so its long side is that many pixels
(like ``anime run --size``). Paired metrics match files by their path relative to the folder without the
extension (``sub/a.jpg`` pairs with ``sub/a.png``), since translated outputs may change format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import nn

from anime_core.inference import io

T = TypeVar("T")
Failed = list[tuple[str, str]]


def load(path: Path, size: int | None = None) -> Image.Image:
    """RGB, scaled so the long side is ``size`` when given; raises :class:`~anime_core.inference.io.BadImage`."""
    return io.resize_long_side(io.decode(path), size)


def read(path: Path, size: int | None = None) -> torch.Tensor:
    """uint8 (3, H, W) RGB (long side ``size`` when given); raises :class:`~anime_core.inference.io.BadImage`."""
    return io.to_tensor(load(path, size))


def batched_by_size(items: Iterable[tuple[T, torch.Tensor]], batch_size: int) -> Iterator[list[tuple[T, torch.Tensor]]]:
    """Group ``(tag, image)`` items into lists of at most ``batch_size`` images of one size."""
    pending: dict[tuple[int, ...], list[tuple[T, torch.Tensor]]] = {}
    for tag, image in items:
        group = pending.setdefault(tuple(image.shape[-2:]), [])
        group.append((tag, image))
        if len(group) >= batch_size:
            yield pending.pop(tuple(image.shape[-2:]))
    yield from pending.values()


def as_features(out: Any) -> dict[str, torch.Tensor]:
    """An extractor's output as ``{"pool": (N, D), "logits": (N, C)}``; a plain tensor serves as both."""
    if isinstance(out, torch.Tensor):
        flat = out.flatten(1)
        return {"pool": flat, "logits": flat}
    if isinstance(out, Mapping) and "pool" in out:
        return {k: v.flatten(1) for k, v in out.items()}
    raise TypeError("a feature extractor must return an (N, D) tensor or a dict with 'pool' (and 'logits')")


def extract_features(
    extractor: nn.Module,
    files: list[Path],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "features",
    size: int | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> tuple[dict[str, torch.Tensor], Failed]:
    """Run ``extractor`` on uint8 (N, 3, H, W) batches of ``files``; returns concatenated features and failures.

    ``size`` scales each image to that long side first; ``on_failure(path, reason)`` hears of each skipped file
    as it happens.
    """
    from tqdm.auto import tqdm

    failed: Failed = []
    bar = tqdm(total=len(files), unit="img", desc=desc, disable=not progress, leave=False)

    def decoded() -> Iterator[tuple[Path, torch.Tensor]]:
        for f in files:
            try:
                yield f, read(f, size)
            except io.BadImage as exc:
                failed.append((str(f), str(exc)))
                if on_failure is not None:
                    on_failure(str(f), str(exc))
                bar.update(1)

    chunks: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for group in batched_by_size(decoded(), batch_size):
            batch = torch.stack([img for _, img in group]).to(device)
            for name, value in as_features(extractor(batch)).items():
                chunks.setdefault(name, []).append(value.detach().float().cpu())
            bar.update(len(group))
    bar.close()
    return {k: torch.cat(v) for k, v in chunks.items()}, failed
