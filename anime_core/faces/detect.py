"""RetinaFace face detection on ONNX Runtime, anchors and NMS in numpy (no OpenCV).

RetinaFace (J. Deng et al., "RetinaFace: Single-stage Dense Face Localisation in the Wild", CVPR
2020) with the MobileNet-0.25 backbone of biubug6/Pytorch_Retinaface: the detector of
AnimeGANv3's portrait tool. The network predicts, for every anchor of its stride-8/16/32 feature
maps (two square anchors per cell: min sizes 16/32, 64/128, 256/512 px), a face score, box offsets
and five landmarks, encoded as in SSD (W. Liu et al., ECCV 2016) with variances 0.1 and 0.2.

Detection runs on a copy downscaled to at most ``max_pixels`` (a 640 px square by default: the
network's own training size), so its cost does not grow with the photo; boxes and landmarks are
scaled back to the photo's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: (stride, anchor min sizes) of the three feature maps, and the SSD variances of the encoding
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)
#: detection input budget: the photo is downscaled so its area is at most this (640 x 640)
DETECT_PIXELS = 640 * 640
SCORE = 0.6  # face probability threshold (Pytorch_Retinaface's vis_thres)
NMS_IOU = 0.4  # as in Pytorch_Retinaface's detect.py


@dataclass
class Face:
    """One face in image pixels: ``box`` (x0, y0, x1, y1), ``points`` (5, 2) as left eye, right eye, nose,
    left and right mouth corners (the image's left and right), and the detector's ``score``."""

    box: np.ndarray
    points: np.ndarray
    score: float = 1.0
    track: int = -1  # the track id in a video (:mod:`anime_core.faces.track`), -1 for a still
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> float:
        """The face's size in px: the longer side of its box."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@lru_cache(maxsize=8)
def anchors(height: int, width: int) -> np.ndarray:
    """(A, 4) anchors (cx, cy, w, h) in [0, 1] units of an input of ``height`` x ``width``, in the network's order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = ((xs + 0.5) * step / width).reshape(-1, 1)
        cy = ((ys + 0.5) * step / height).reshape(-1, 1)
        for_cell = [np.concatenate([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], 1)
                    for s in sizes]
        out.append(np.stack(for_cell, 1).reshape(-1, 4))  # cell-major, then size: the network's order
    return np.concatenate(out).astype(np.float32)


def decode(loc: np.ndarray, landm: np.ndarray, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSD decoding: offsets (A, 4) and landmarks (A, 10) against ``priors`` -> boxes (A, 4), points (A, 5, 2)."""
    v0, v1 = VARIANCES
    centre = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], 1)
    points = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
    return boxes, points


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (N, 4) and ``b`` (M, 4): (N, M)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            rest = np.array(order)
            order = list(rest[iou(boxes[i:i + 1], boxes[rest])[0] <= threshold])
    return keep


class RetinaFace:
    """``detector(rgb)`` -> faces of an (H, W, 3) uint8 RGB image, largest first.

    ``path``: the verified ONNX file; ``max_pixels``: the detection input budget; ``threads``: ONNX
    Runtime's intra-op threads (0: its default).
    """

    def __init__(self, path: str | Path, max_pixels: int = DETECT_PIXELS, score: float = SCORE,
                 threads: int = 0) -> None:
        ort = _onnxruntime()
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.max_pixels, self.score = max_pixels, score

    def scale_for(self, height: int, width: int) -> float:
        """The factor the photo is resized by for detection (at most 1: never upscaled)."""
        return min(1.0, math.sqrt(self.max_pixels / (height * width)))

    def __call__(self, rgb: np.ndarray) -> list[Face]:
        from PIL import Image

        h, w = rgb.shape[:2]
        s = self.scale_for(h, w)
        small = rgb
        if s < 1:
            small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))),
                                                           Image.Resampling.BILINEAR))
        sh, sw = small.shape[:2]
        x = small[..., ::-1].astype(np.float32) - np.array(MEAN_BGR, np.float32)
        loc, conf, landm = self.session.run(None, {self.input: x.transpose(2, 0, 1)[None].copy()})
        scores = conf[0, :, 1]
        hit = scores > self.score
        if not hit.any():
            return []
        boxes, points = decode(loc[0][hit], landm[0][hit], anchors(sh, sw)[hit])
        scale = np.array([w, h], np.float32)  # the decoded units are fractions of the (resized) whole image
        boxes = boxes * np.tile(scale, 2)
        points = points * scale
        keep = nms(boxes, scores[hit])
        faces = [Face(boxes[i], points[i], float(scores[hit][i])) for i in keep]
        return sorted(faces, key=lambda f: -f.size)


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        from anime_core.errors import UsageError

        raise UsageError("--faces needs ONNX Runtime for its face detector; pip install 'anime-core[faces]'") from None
    return onnxruntime


def build_retinaface(path: str | Path, **options: Any) -> RetinaFace:
    """The builder the ``retinaface`` detector spec names: ``path`` is the verified weights file."""
    return RetinaFace(path, **options)
