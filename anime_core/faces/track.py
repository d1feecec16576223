"""Face tracks across video frames: association by box overlap, One Euro smoothing of boxes and landmarks.

A detector's boxes and landmarks wobble by a pixel or two between frames even when nothing moves
(sensor noise, compression); pasted faces would shimmer. Each detection is matched to the track it
overlaps most (IoU, greedy, best first); a track's 14 numbers (box and five points) go through a
One Euro filter (G. Casiez, N. Roussel, D. Vogel, "1 Euro Filter", CHI 2012): heavy smoothing
while the face is still, little lag once it moves (the cut-off grows with the speed, measured in
face sizes per frame so it does not depend on resolution). A face that enters starts a track at
once; a track that finds no detection is kept for ``patience`` frames (a missed detection, a blink
of occlusion) and then dropped, so a face that leaves stops being pasted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anime_core.faces.detect import Face, iou

MATCH_IOU = 0.3
PATIENCE = 2  # frames a track survives without a detection
MIN_CUTOFF = 0.05  # cycles per frame when still: ~0.24 of a new detection enters the estimate
BETA = 10.0  # cut-off gained per (face size per frame) of speed
D_CUTOFF = 1.0


def _alpha(cutoff: float) -> float:
    tau = 1 / (2 * math.pi * cutoff)
    return 1 / (1 + tau)  # one frame per sample


@dataclass
class _Track:
    ident: int
    value: np.ndarray  # (14,) filtered box and points
    speed: np.ndarray  # (14,) filtered derivative
    score: float
    missed: int = 0

    def update(self, raw: np.ndarray, score: float, size: float) -> None:
        d = raw - self.value
        self.speed = self.speed + _alpha(D_CUTOFF) * (d - self.speed)
        cutoff = MIN_CUTOFF + BETA * float(np.abs(self.speed).max()) / max(size, 1.0)
        self.value = self.value + _alpha(cutoff) * d
        self.score, self.missed = score, 0

    def face(self) -> Face:
        return Face(self.value[:4].copy(), self.value[4:].reshape(5, 2).copy(), self.score, self.ident)


def _vector(face: Face) -> np.ndarray:
    return np.concatenate([np.asarray(face.box, np.float64).ravel(), np.asarray(face.points, np.float64).ravel()])


class FaceTracker:
    """``tracker.update(faces)`` once per frame, in order -> the smoothed faces of that frame, with track ids."""

    def __init__(self, match_iou: float = MATCH_IOU, patience: int = PATIENCE) -> None:
        self.match_iou, self.patience = match_iou, patience
        self.tracks: list[_Track] = []
        self._next = 0

    def update(self, faces: list[Face]) -> list[Face]:
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        held = np.array([t.value[:4] for t in self.tracks], np.float64).reshape(-1, 4)
        overlap = iou(held, boxes) if len(held) and len(boxes) else np.zeros((len(held), len(boxes)))
        taken_t: set[int] = set()
        taken_f: set[int] = set()
        for flat in np.argsort(-overlap, axis=None):
            ti, fi = divmod(int(flat), max(1, len(boxes)))
            if overlap[ti, fi] < self.match_iou:
                break
            if ti in taken_t or fi in taken_f:
                continue
            taken_t.add(ti)
            taken_f.add(fi)
            self.tracks[ti].update(_vector(faces[fi]), faces[fi].score, faces[fi].size)
        for ti, track in enumerate(self.tracks):
            if ti not in taken_t:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.patience]
        for fi, face in enumerate(faces):
            if fi not in taken_f:  # a face that entered: a new track, unsmoothed on its first frame
                self.tracks.append(_Track(self._next, _vector(face), np.zeros(14), face.score))
                self._next += 1
        return [t.face() for t in self.tracks]
