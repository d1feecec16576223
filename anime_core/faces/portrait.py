"""Portrait mode (``--faces``): every face detected, aligned, stylised on its own and pasted back.

As AnimeGANv3's portrait tool does: faces are found by a registered detector (RetinaFace by
default, :mod:`anime_core.faces.detect`), each is aligned by its five landmarks to the template its
style was trained on (``StyleSpec.face``, FFHQ 512 px by default; :mod:`anime_core.faces.align`),
stylised at that size, and its change is pasted back through the inverse transform under a
feathered head mask (:mod:`anime_core.faces.paste`). The rest of the picture is the *background*:

- ``same``: the face model run on the whole picture (the plain run);
- ``keep``: the photo itself;
- a style name (``hayao``, or ``MODEL:STYLE`` of another model): that style run on the whole picture.

:class:`PortraitPipeline` is a :class:`TranslatePipeline`, so ``anime run``, the API and the web
app use it like any other; in a video each clip gets its own face tracks (:meth:`for_clip`,
:mod:`anime_core.faces.track`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from anime_core import budget
from anime_core.errors import UsageError
from anime_core.faces.align import align
from anime_core.faces.detect import Face
from anime_core.faces.paste import head_mask, paste
from anime_core.faces.track import FaceTracker
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.specs import FFHQ_512, FaceTemplate

DEFAULT_DETECTOR = "retinaface"
MIN_FACE = 32  # px: smaller faces are left to the background (the detector's own floor is about 16 px)
MAX_FACES = 32
#: the most faces one image may ask for (--max-faces): each is a full run of the model at its face size
FACES_LIMIT = 1_000
BACKGROUNDS = ("same", "keep")


@dataclass
class FaceCounts:
    """How many faces were stylised and skipped (under ``--min-face``, over ``--max-faces``), over all images."""

    stylised: int = 0
    small: int = 0
    over: int = 0
    images: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stylised: int, small: int, over: int) -> None:
        with self.lock:
            self.stylised += stylised
            self.small += small
            self.over += over
            self.images += 1

    def line(self, min_face: int, max_faces: int) -> str:
        skipped = self.small + self.over
        why = [f"{self.small} under {min_face} px"] if self.small else []
        why += [f"{self.over} over --max-faces {max_faces}"] if self.over else []
        return (f"faces: {self.stylised} stylised, {skipped} skipped" + (f" ({', '.join(why)})" if why else "")
                + f" in {self.images} image{'s' * (self.images != 1)}")


class PortraitPipeline(TranslatePipeline):
    """The face pipeline ``face`` applied to each detected face, over ``background`` (``None``: the photo).

    It shares the face pipeline's generator, device and precision; ``counts`` says what it did.
    """

    def __init__(self, face: TranslatePipeline, background: TranslatePipeline | None, detector: Callable[..., Any],
                 template: FaceTemplate = FFHQ_512, min_face: int = MIN_FACE, max_faces: int = MAX_FACES,
                 background_name: str = "same", face_preset: bool = False) -> None:
        # no Pipeline.__init__: the nets, device and precision are the face pipeline's, already set up
        self.__dict__.update({k: v for k, v in face.__dict__.items() if not k.startswith("_tile")})
        for pipe in (face, background):
            if pipe is not None and pipe.out_scale != 1:
                raise UsageError(f"--faces pastes faces into a picture of the input's size; {pipe.spec.name} "
                                 f"outputs {pipe.out_scale}x the input, so run it without --faces")
        budget.check_count(max_faces, FACES_LIMIT, "--max-faces")
        self.face, self.background, self.detector = face, background, detector
        self.template, self.min_face, self.max_faces = template, min_face, max_faces
        self.background_name = background_name
        self.mask = head_mask(template)
        self.points = np.array(template.points, np.float64)
        self.counts = FaceCounts()
        self.tracker: FaceTracker | None = None
        self.last_faces: list[Face] = []
        # the whole picture's resize policy: the background's; a face style's size/crop preset is the face's
        base = background if background is not None else face
        self.defaults = dict(base.defaults)
        if base is face and face_preset:
            self.defaults.pop("size", None)
            self.defaults.pop("center_crop", None)

    def for_clip(self) -> PortraitPipeline:
        """A view for one video clip: its own face tracks, smoothed across its frames in order."""
        clip = copy.copy(self)
        clip.tracker = FaceTracker()
        return clip

    # -- the faces of one image ---------------------------------------------------------------
    def find(self, photo: torch.Tensor) -> list[Face]:
        """The faces to stylise in ``photo`` (3, H, W) float [0, 1], largest first; counts what it skips."""
        rgb = (photo.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        faces = self.detector(np.ascontiguousarray(rgb))
        if self.tracker is not None:
            faces = self.tracker.update(faces)
        faces = sorted(faces, key=lambda f: -f.size)
        big = [f for f in faces if f.size >= self.min_face]
        chosen = big[: self.max_faces]
        self.counts.add(len(chosen), len(faces) - len(big), len(big) - len(chosen))
        self.last_faces = chosen
        return chosen

    def _faces(self, photo: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """``base`` (the background, 3 x H x W) with every face of ``photo`` pasted in."""
        out = base.clone()
        for f in self.find(photo):
            crop, m = align(photo[None], f.points, self.points, self.template.size)
            styled = self.face.forward(crop)
            if not bool(torch.isfinite(styled).all()):
                out[:] = torch.nan  # refused by the caller's finiteness check, as a plain run's would be
                return out
            paste(out, photo, styled - crop, self.mask, m)
        return out

    def _background(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        if self.background is None:
            return x.float().cpu()
        if tile is None and x.dim() == 4:
            return self.background.forward(x)
        out = self.background.translate(x, tile)
        self.last_tiling = getattr(self.background, "last_tiling", None)
        return out

    def parity_sample(self) -> torch.Tensor:
        """The face model's own sample (``--precision auto``): the check runs no detector and counts no faces."""
        return self.face.parity_sample()

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 or [0, 1] float -> (N, 3, H, W) float [0, 1] on the CPU, faces stylised."""
        photo = x.cpu()
        photo = photo.float() / 255 if photo.dtype == torch.uint8 else photo.float()
        base = self._background(photo)
        out = torch.stack([self._faces(p, b) for p, b in zip(photo, base)])
        return self.controls.apply(out, photo)  # --strength/--keep-colors on the composite, faces and background alike

    @torch.inference_mode()
    def translate(self, image: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """One (3, H, W) image; the background in tiles when it is large (faces are crops of a fixed size)."""
        self.last_tiling = None
        photo = image.cpu()
        photo = photo.float() / 255 if photo.dtype == torch.uint8 else photo.float()
        if self.tile_for(*photo.shape[-2:], tile) is None:
            return self.forward(photo[None])[0]
        out = self._faces(photo, self._background(photo, tile))
        return self.controls.apply(out[None], photo[None])[0]


def parse_background(value: str | None) -> str:
    """``same``, ``keep``, ``STYLE`` or ``MODEL:STYLE``; checked for shape only (the registry checks names)."""
    value = (value or "same").strip()
    if not value:
        raise UsageError("--background is empty; give same, keep, a style name or MODEL:STYLE")
    return value


def build_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> Callable[..., list[Face]]:
    """The registered detector ``name``, its weights fetched and verified (``detector:NAME`` in the catalogue)."""
    from anime_core.registry import get_registry
    from anime_core.weights import fetch

    spec = get_registry().detector(name)
    path = fetch(spec.key, spec.source) if spec.source is not None else None
    return spec.builder()(path, **options)


def portrait(face: TranslatePipeline, background: TranslatePipeline | None, *, template: FaceTemplate | None = None,
             detector: str = DEFAULT_DETECTOR, min_face: int = MIN_FACE, max_faces: int = MAX_FACES,
             background_name: str = "same", face_preset: bool = False) -> PortraitPipeline:
    """Wrap ``face`` (and a background pipeline, ``None`` for the photo) in portrait mode.

    ``face_preset``: the face pipeline's resize defaults describe its faces (a face style's 512 px
    centre crop), so the whole picture does not take them.
    """
    if not isinstance(face, TranslatePipeline):
        raise UsageError(f"--faces stylises faces in photos; '{face.spec.name}' does not translate images")
    if min_face < 1:
        raise UsageError(f"--min-face {min_face} is not a size; give a face size in px, e.g. {MIN_FACE}")
    if max_faces < 1:
        raise UsageError(f"--max-faces {max_faces} stylises no face; give at least 1")
    return PortraitPipeline(face, background, build_detector(detector), template or FFHQ_512, min_face, max_faces,
                            background_name, face_preset)
