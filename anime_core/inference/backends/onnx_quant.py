"""Static int8 quantization of a verified fp32 ONNX graph, calibrated and checked on real photos.

ONNX Runtime's ``quantize_static`` (QDQ format, uint8 activations, per-channel int8 weights)
calibrates on the photos given; each photo then goes through the fp32 and the int8 graph and the
pipeline's pre/post-processing, and below :data:`INT8_MIN_PSNR` dB on any of them the export
fails (:class:`~.base.ExportError`). Called by :func:`.onnx_export.export` for ``--precision int8``.
"""

from __future__ import annotations

import contextlib
import copy
import io as _io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from anime_core.errors import UsageError
from anime_core.inference.backends.base import ExportError
from anime_core.inference.backends.onnx_runtime import require, session_options
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.tiling import pad_to_multiple
from anime_core.ops import psnr

if TYPE_CHECKING:
    from anime_core.inference.pipeline import Pipeline

INT8_MIN_PSNR = 35.0  # dB of the int8 graph's 8-bit image against the fp32 graph's, on every calibration image


def _unique_initializer_names(proto: Any) -> None:
    """Rename initializers apart from node outputs: the dynamo exporter may give a GroupNorm constant and a
    node output the same name, and ONNX Runtime's quantizer then feeds the constant to the next Conv."""
    rename = {i.name: f"init::{i.name}" for i in proto.graph.initializer}
    for init in proto.graph.initializer:
        init.name = rename[init.name]
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]


def quantize_int8(pipe: Pipeline, proto: Any, calibration: list[torch.Tensor]) -> tuple[Any, list[float]]:
    """Static int8 (QDQ, per-channel weights) of a verified fp32 graph, calibrated and checked on real images.

    ``calibration``: (3, H, W) uint8 images as the pipeline would run them (resized). Each goes
    through both graphs and the pipeline's pre/post-processing; below :data:`INT8_MIN_PSNR` dB on
    any image the export fails. Returns the int8 ModelProto and the PSNR of each image.
    """
    if not isinstance(pipe, TranslatePipeline):
        raise UsageError("--precision int8 is for image-to-image models (it is calibrated on photos)")
    if not calibration:
        raise UsageError("--precision int8 needs calibration photos: add --calibrate FOLDER (a few typical inputs)")
    require("onnx")
    quantization = require("onnxruntime.quantization")
    ort = require()
    feeds = []
    for image in calibration:
        x = image[None].float() / 255
        padded, _ = pad_to_multiple(x, pipe.stride)
        feeds.append((x, pipe.preprocess(padded).float().numpy()))

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": feed} for _, feed in feeds])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    fp32 = copy.deepcopy(proto)
    del fp32.metadata_props[:]
    _unique_initializer_names(fp32)
    chatter = _io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32.SerializeToString())
        logging.disable(logging.WARNING)  # the quantizer logs a line per bias and norm constant on the root logger
        try:
            quantization.quantize_static(src, dst, Reader(), quant_format=quantization.QuantFormat.QDQ,
                                         per_channel=True, activation_type=quantization.QuantType.QUInt8,
                                         weight_type=quantization.QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        data = dst.read_bytes()
    sessions = [ort.InferenceSession(g, session_options(), providers=["CPUExecutionProvider"])
                for g in (fp32.SerializeToString(), data)]
    scores = []
    for x, feed in feeds:
        h, w = x.shape[-2:]
        s = pipe.out_scale
        images = [(pipe.postprocess(torch.from_numpy(sess.run(None, {"input": feed})[0])[..., : h * s, : w * s], x)
                   * 255).round() / 255 for sess in sessions]
        scores.append(float(psnr(images[1], images[0])[0]))
    if min(scores) < INT8_MIN_PSNR:
        raise ExportError(f"the int8 graph's images are {min(scores):.1f} dB from fp32's on the worst calibration "
                          f"photo (at least {INT8_MIN_PSNR:g} dB needed; "
                          f"{', '.join(f'{v:.1f}' for v in scores)}); export with --precision fp32")
    onnx = require("onnx")
    return onnx.load_from_string(data), scores

