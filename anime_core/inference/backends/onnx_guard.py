"""Bounds on an ONNX graph from outside, checked before ONNX Runtime runs (or folds) a node of it.

A third-party graph is a program: a ``ConstantOfShape`` node can ask for 19 GB, a ``Loop`` for
10^12 iterations, and ONNX Runtime runs either without a limit (constant folding at session
creation included). :class:`GraphGuard` reads the graph once, before the session is made, and
refuses (:class:`~anime_core.errors.WeightsUnavailable`, exit 3):

- control flow (``Loop``, ``Scan``, ``If``, any node holding a subgraph): no image generator
  needs it, and its running time is not bounded by the input;
- a constant (initializer, ``Constant`` value, or any tensor computed from constants alone, such
  as a ``ConstantOfShape`` of a fixed shape) above :data:`MAX_CONSTANT_BYTES`, and weights or
  tensors of known size above the memory budget (:func:`anime_core.budget.check_bytes`).

Before each run, :meth:`GraphGuard.check_run` infers every tensor's shape at the concrete input
size (``onnx.shape_inference`` with data propagation) and estimates the peak of the tensors alive
at once, in the graph's node order, times :data:`ORT_OVERHEAD`; above the budget the input is
refused (``BadImage``: that image fails, with the ``--tile`` that fits) or, when no practical tile
fits, the graph is.
Tensors whose size cannot be inferred count as zero: they are allowed, giant known ones are not.

Names read from the file (metadata values, node and op names) reach messages only through
:func:`printable`. onnx is imported inside functions (the ``anime-core[onnx]`` extra).
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from anime_core import budget
from anime_core.errors import AnimeError, WeightsUnavailable

#: one constant tensor may hold at most this (the largest generator weight is a few tens of MB)
MAX_CONSTANT_BYTES = 1 << 30
#: sides are padded to a multiple of the metadata's ``stride``: a power of two up to this (a U-Net of 8 levels)
MAX_STRIDE = 256
#: the metadata's ``scale`` (output side / input side) at most this
MAX_SCALE = 16
#: ONNX Runtime's peak over the tensors' own bytes (arena rounding, convolution workspaces): measured 2.1 GB
#: of RSS growth for an AnimeGAN v2 export at 1024x1024 px whose tensors peak at 1.0 GiB
ORT_OVERHEAD = 2.0
#: the smallest tile side worth suggesting; a graph that cannot run even that is refused as a whole
MIN_TILE = 64
#: op types whose running time the input size does not bound
CONTROL_FLOW = frozenset({"Loop", "Scan", "If", "SequenceMap"})
#: initializers above this many bytes become shaped inputs for shape inference (their values are never needed)
_SKELETON_BYTES = 1 << 12
_CACHE = 8  # concrete-shape estimates kept (whole images, tiles, video frames share a few sizes)
_GRAPH_ATTRIBUTES = (5, 10)  # onnx.AttributeProto.GRAPH, GRAPHS


def printable(text: object, limit: int = 80) -> str:
    r"""``text`` safe to print: control and format characters escaped (``\x1b``, ``\n``), cut at ``limit``."""
    out = []
    for ch in str(text)[:limit]:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + ("..." if len(str(text)) > limit else "")


def check_metadata_attribute(name: str, value: Any, what: str) -> None:
    """``stride`` and ``scale`` from our metadata: bounded by what a generator is, not by the file."""
    if name == "stride" and (value > MAX_STRIDE or value & (value - 1)):
        raise WeightsUnavailable(
            f"{what} has metadata stride={value}, not a power of two up to {MAX_STRIDE} (every image would be "
            f"padded to a multiple of it); export it again")
    if name == "scale" and value > MAX_SCALE:
        raise WeightsUnavailable(f"{what} has metadata scale={value}, above the {MAX_SCALE}x any super-resolution "
                                 f"generator has; export it again")


def _itemsize(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(helper.tensor_dtype_to_np_dtype(elem_type).itemsize) or 1
    except (KeyError, TypeError, ValueError):
        return 8  # strings and anything unknown: a pointer each


def _tensor_bytes(dims: Any, elem_type: int) -> int:
    return math.prod(int(d) for d in dims) * _itemsize(elem_type)


def _value_bytes(value: Any) -> int | None:
    """Bytes of a ``ValueInfoProto`` of fully known shape; None when a dimension is unknown."""
    t = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if t is None or not t.HasField("shape") or not t.elem_type:
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        dims.append(d.dim_value)
    return _tensor_bytes(dims, t.elem_type)


def _nodes(model: Any) -> list[Any]:
    return list(model.graph.node) + [n for f in model.functions for n in f.node]


class GraphGuard:
    """The checks on one graph: static ones when made, :meth:`check_run` before each run."""

    def __init__(self, model: Any, what: str) -> None:
        self.what = what
        #: set by the generator once it knows them: the refusal's error class and suggested tile depend on them
        self.kind, self.stride = "translate", 1
        self._check_ops(model)
        init_names = self._check_constants(model)
        self.feeds = [i.name for i in model.graph.input if i.name not in init_names]
        self._skeleton = _skeleton(model)
        self._estimates: dict[tuple[tuple[int, ...], ...], tuple[int, str]] = {}
        inferred = self._infer(self._skeleton)
        self._check_folded(inferred, init_names)
        peak, biggest = _peak(inferred, self.feeds)
        budget.check_bytes(peak * ORT_OVERHEAD, f"{what} (tensors of known size: {biggest})", WeightsUnavailable)

    # -- static ----------------------------------------------------------------------------------
    def _check_ops(self, model: Any) -> None:
        for node in _nodes(model):
            if node.op_type in CONTROL_FLOW or any(a.type in _GRAPH_ATTRIBUTES for a in node.attribute):
                raise WeightsUnavailable(
                    f"{self.what} holds a '{printable(node.op_type, 40)}' node (control flow, whose running time "
                    f"no input size bounds), which no image generator needs; it is not run")

    def _check_constants(self, model: Any) -> set[str]:
        """Initializers and Constant values: each under :data:`MAX_CONSTANT_BYTES`, all within the budget."""
        total = 0
        names = set()
        for init in model.graph.initializer:
            names.add(init.name)
            if any(d < 0 for d in init.dims):
                raise WeightsUnavailable(f"{self.what} has a constant of negative size ({printable(init.name, 40)}); "
                                         f"it is corrupt")
            size = _tensor_bytes(init.dims, init.data_type)
            self._constant(size, f"constant '{printable(init.name, 40)}'")
            total += size
        for node in _nodes(model):
            if node.op_type != "Constant":
                continue
            for a in node.attribute:
                tensor = a.t if a.HasField("t") else a.sparse_tensor.values if a.HasField("sparse_tensor") else None
                dims = a.sparse_tensor.dims if a.HasField("sparse_tensor") else tensor.dims if tensor else []
                if tensor is not None:
                    self._constant(_tensor_bytes(dims, tensor.data_type),
                                   f"Constant node '{printable(node.name or node.output[0], 40)}'")
        budget.check_bytes(total, f"{self.what}'s weights", WeightsUnavailable)
        return names

    def _constant(self, size: int, name: str) -> None:
        if size > MAX_CONSTANT_BYTES:
            limit = budget.fmt_bytes(MAX_CONSTANT_BYTES)
            raise WeightsUnavailable(f"{self.what} makes a {budget.fmt_bytes(size)} {name}, above the {limit} any "
                                     f"generator needs for one constant; it is not run")

    def _check_folded(self, inferred: Any, init_names: set[str]) -> None:
        """Tensors computed from constants alone (ONNX Runtime folds them when it loads the graph)."""
        sizes = _sizes(inferred)
        varying = set(self.feeds)
        for node in inferred.graph.node:
            if any(i in varying for i in node.input if i):
                varying.update(node.output)
                continue
            for out in node.output:
                size = sizes.get(out)
                if size is not None:
                    op = printable(node.op_type, 40)
                    self._constant(size, f"'{op}' output '{printable(out, 40)}' (from constants alone)")

    def _infer(self, model: Any) -> Any:
        from onnx import shape_inference

        try:
            return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception as exc:  # onnx raises its own types for graphs it cannot read
            text = str(exc).strip().splitlines()
            raise WeightsUnavailable(f"{self.what} could not be checked before running it (onnx shape inference: "
                                     f"{printable(text[0] if text else type(exc).__name__, 120)})") from None

    # -- per run -----------------------------------------------------------------------------------
    def estimate(self, shapes: dict[str, tuple[int, ...]]) -> tuple[int, str]:
        """(peak bytes of tensors alive at once, the largest tensor) for inputs of these shapes, by name."""
        key = tuple(tuple(int(d) for d in shapes.get(name, ())) for name in self.feeds)
        if key not in self._estimates:
            saved = []
            inputs = {v.name: v for v in self._skeleton.graph.input}
            for name, shape in zip(self.feeds, key):
                value = inputs[name]
                saved.append((value, type(value.type)()))
                saved[-1][1].CopyFrom(value.type)
                dims = value.type.tensor_type.shape.dim
                if len(dims) == len(shape):
                    for d, n in zip(dims, shape):
                        d.Clear()
                        d.dim_value = n
            try:
                self._estimates[key] = _peak(self._infer(self._skeleton), self.feeds)
            finally:
                for value, old in saved:
                    value.type.CopyFrom(old)
            while len(self._estimates) > _CACHE:
                self._estimates.pop(next(iter(self._estimates)))
        return self._estimates[key]

    def check_run(self, shapes: dict[str, tuple[int, ...]], h: int, w: int) -> None:
        """Refuse a run whose tensors, at these input shapes (an ``h`` x ``w`` image), would not fit the budget."""
        from anime_core.inference import io

        peak, biggest = self.estimate(shapes)
        need, limit = peak * ORT_OVERHEAD, budget.max_memory()
        if need <= limit:
            return
        n = next(iter(shapes.values()))[0] if shapes else 1
        if self.kind != "translate":
            budget.check_bytes(need, f"{self.what} on a batch of {n} (largest tensor: {biggest})",
                               WeightsUnavailable, advice="use a smaller --batch-size")
        # the tensors grow with the pixels: the long side that fits, with a margin for what does not grow (a graph
        # runs whole: its norms cannot be gathered across tiles, so the advice is a smaller copy)
        side = int(max(h, w) * math.sqrt(0.9 * limit / need / max(n, 1))) // self.stride * self.stride
        what = f"{self.what} at {w}x{h} px" + (f" (a batch of {n})" if n > 1 else "")
        fits = side >= max(MIN_TILE, self.stride)
        error: type[AnimeError] = io.BadImage if fits else WeightsUnavailable
        advice = f"use --size {side}" if fits else "it does not fit even at a small size"
        budget.check_bytes(need, f"{what} (largest tensor: {biggest})", error, advice=advice)


def _skeleton(model: Any) -> Any:
    """A copy of the graph for shape inference: large initializers become shaped inputs (no data)."""
    from onnx import ModelProto, helper

    skel = ModelProto()
    skel.CopyFrom(model)
    keep = []
    for init in skel.graph.initializer:
        if _tensor_bytes(init.dims, init.data_type) > _SKELETON_BYTES:
            skel.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            keep.append(init)
    del skel.graph.initializer[:]
    skel.graph.initializer.extend(keep)
    return skel


def _sizes(inferred: Any) -> dict[str, int | None]:
    g = inferred.graph
    return {v.name: _value_bytes(v) for v in (*g.input, *g.value_info, *g.output)}


def _peak(inferred: Any, feeds: list[str]) -> tuple[int, str]:
    """The most bytes of known-size tensors alive at once, running the nodes in order; and the largest one.

    Weights (initializers) are not counted: the session holds them already, and they were checked once.
    """
    g = inferred.graph
    sizes = _sizes(inferred)
    kept = {o.name for o in g.output} | ({i.name for i in g.input} - set(feeds))  # outputs, weights
    last: dict[str, int] = {}
    for k, node in enumerate(g.node):
        for name in node.input:
            last[name] = k
    live = sum(sizes.get(name) or 0 for name in feeds)
    peak, biggest, label = live, 0, "none"
    for k, node in enumerate(g.node):
        for out in node.output:
            size = sizes.get(out) or 0
            live += size
            if size > biggest:
                biggest, label = size, f"{budget.fmt_bytes(size)} from '{printable(node.op_type, 40)}'"
        peak = max(peak, live)
        for name in set(node.input):
            if name and last.get(name) == k and name not in kept:
                live -= sizes.get(name) or 0
    return peak, label

