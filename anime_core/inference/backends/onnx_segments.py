"""Exact tiles on a graph backend: the generator's ONNX export cut at every global call, run segment by segment.

A graph run whole (ONNX Runtime, OpenVINO) cannot stop a tile at a norm, so tiles cannot gather
the norms' statistics across the image. Here the export is made splittable (:func:`cut_export`):
each *cut* (a global-statistics norm, a global module such as self-attention, a module the tile
plan computes on the whole image, all of :mod:`anime_core.inference.norms` or the plan's contexts)
is exported as one node of a custom domain (:data:`CUT_DOMAIN`, a ``torch.library`` custom op
whose fake implementation is the module's own forward, so shapes stay symbolic), and each
bilinear ``Resize`` with ``align_corners`` is a cut too. :func:`split` divides the graph in node
order into segments between cuts; :class:`SegmentedGenerator` runs the segments on the backend
and the cuts in torch: the torch generator's own modules (under their qualified names, so the
sweep's :class:`~anime_core.inference.tracing.Intercept` stops there) and ``F.interpolate``
(which :class:`~anime_core.inference.tracing.TileGeometry` makes exact). The tiled run is then
:func:`~anime_core.inference.tiling.run_faithful` of the torch pipeline with this net: the same
plan, sweep and statistics as torch, the convolutions on the graph backend.

Segments keep a dict of live values and drop each after its last use, so a paused tile holds only
the maps later segments read. The cut export is cached beside the plain one (same digest) once a
segmented run matched the torch generator (:func:`verify_segments`).
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anime_core.inference.backends.base import ExportError
from anime_core.inference.backends.onnx_export import (
    FP32_TOLERANCE,
    _dynamic_shapes,
    _exportable,
    _inputs,
    _to_proto,
)
from anime_core.inference.backends.onnx_runtime import providers, require, session_options
from anime_core.inference.casting import fp32_weights
from anime_core.inference.norms import donate, is_global_module, norm_spec

if TYPE_CHECKING:
    from anime_core.inference.pipeline import TranslatePipeline
    from anime_core.inference.tileplan import TilePlan

CUT_DOMAIN = "anime.cut"
CUT_OP = "Cut"
#: metadata key of a cut export: the qualified names of the cut modules, by the nodes' ``index``
CUTS_KEY = "anime_cuts"
Runner = Callable[[dict[str, np.ndarray], list[str]], list[Any]]  # numpy arrays or CPU torch tensors

# -- export ------------------------------------------------------------------------------------
_FORWARDS: dict[int, Callable[..., torch.Tensor]] = {}  # cut index -> the module's own forward, while exporting
_EXPORTING = threading.Lock()


@torch.library.custom_op("anime::cut", mutates_args=())
def _cut(x: torch.Tensor, index: int) -> torch.Tensor:
    return _FORWARDS[index](x).clone()


@_cut.register_fake
def _cut_fake(x: torch.Tensor, index: int) -> torch.Tensor:
    return _FORWARDS[index](x)  # the module on fake tensors: its output's symbolic shape


def _translation() -> dict[Any, Any]:
    """``anime::cut`` -> one ``anime.cut.Cut`` node (schema registered with onnx once)."""
    import onnx
    import onnxscript
    from onnx.defs import OpSchema

    if not onnx.defs.has(CUT_OP, CUT_DOMAIN):
        floats = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]
        onnx.defs.register_schema(OpSchema(
            CUT_OP, CUT_DOMAIN, 1, doc="a module run outside the graph (anime-core tiles)",
            inputs=[OpSchema.FormalParameter("x", "T")], outputs=[OpSchema.FormalParameter("y", "T")],
            type_constraints=[("T", floats, "")],
            attributes=[OpSchema.Attribute("index", OpSchema.AttrType.INT, "the cut's index in the cut list")]))
    opset = onnxscript.values.Opset(CUT_DOMAIN, 1)

    def cut(x: Any, index: int) -> Any:
        return opset.Cut(x, index=index)

    return {torch.ops.anime.cut.default: cut}


def cut_names(generator: nn.Module, calls: frozenset[str] = frozenset()) -> list[str]:
    """The outermost modules of ``generator`` tiles must stop at: norms, global modules and ``calls``."""
    names: list[str] = []
    for name, m in generator.named_modules():
        if not name or any(name.startswith(n + ".") for n in names):
            continue
        if name in calls or norm_spec(m) is not None or is_global_module(m):
            names.append(name)
    return names


def cut_export(pipe: TranslatePipeline, calls: frozenset[str] = frozenset()) -> Any:
    """``pipe``'s generator exported (fp32) with each cut module a ``Cut`` node; its names in :data:`CUTS_KEY`."""
    with fp32_weights(pipe):
        net = _exportable(pipe.generator, "fp32")
    names = cut_names(pipe.generator, calls)
    modules = dict(net.named_modules())
    example, _, inputs = _inputs(pipe)
    with _EXPORTING:
        patched = []
        try:
            for index, name in enumerate(names):
                module = modules[name]
                _FORWARDS[index] = module.forward
                module.forward = _cut_call(index)
                patched.append(module)
            proto = _to_proto(net, example, inputs, _dynamic_shapes(pipe, inputs), None, _translation())
        finally:
            for module in patched:
                del module.forward
            _FORWARDS.clear()
    entry = proto.metadata_props.add()
    entry.key, entry.value = CUTS_KEY, json.dumps(names)
    return proto


def _cut_call(index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _cut(x, index)

    return forward


# -- splitting ---------------------------------------------------------------------------------
@dataclass
class Segment:
    """Consecutive graph nodes between two cuts, as a graph of their own."""

    graph: bytes
    inputs: list[str]
    outputs: list[str]


@dataclass
class Cut:
    """A cut run in torch: module ``name`` on ``inputs[0]``, or (``name`` None) a bilinear align-corners resize."""

    name: str | None
    inputs: list[str]
    outputs: list[str]
    constants: dict[str, np.ndarray] = field(default_factory=dict)  # the resize's sizes/scales when constant


@dataclass
class Split:
    """A cut export in steps; ``last[i]``: the values step ``i`` is the last to read (dropped after it)."""

    steps: list[Segment | Cut]
    input: str
    output: str
    last: list[list[str]]


def _is_cut(node: Any) -> bool:
    if node.domain == CUT_DOMAIN:
        return True
    if node.op_type != "Resize":
        return False
    attrs = {a.name: a for a in node.attribute}
    mode = attrs["mode"].s if "mode" in attrs else b"nearest"
    ctm = attrs["coordinate_transformation_mode"].s if "coordinate_transformation_mode" in attrs else b""
    return ctm == b"align_corners" and mode == b"linear"


def split(proto: Any, same_shape: list[bool]) -> Split:
    """Divide a cut export (:func:`cut_export`) into segments and cuts, in node order (see the module doc).

    ``same_shape[i]``: cut ``i`` returns its input's shape (a norm, a global module).
    """
    from onnx import helper, numpy_helper

    g = proto.graph
    names = json.loads(next(p.value for p in proto.metadata_props if p.key == CUTS_KEY))
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant" and not n.input}
    types = _value_types(proto, same_shape)
    groups: list[list[Any] | Any] = []
    for node in g.node:
        if node.op_type == "Constant" and not node.input:
            continue
        if _is_cut(node):
            groups.append(node)
        elif groups and isinstance(groups[-1], list):
            groups[-1].append(node)
        else:
            groups.append([node])
    reads: list[set[str]] = []
    for grp in groups:
        nodes = grp if isinstance(grp, list) else [grp]
        reads.append({i for n in nodes for i in n.input if i and i not in inits and i not in consts})
    output = g.output[0].name
    last_use: dict[str, int] = {}
    for k, r in enumerate(reads):
        for v in r:
            last_use[v] = k
    last_use[output] = len(groups)
    steps: list[Segment | Cut] = []
    for k, grp in enumerate(groups):
        if not isinstance(grp, list):
            if grp.domain == CUT_DOMAIN:
                index = next(a.i for a in grp.attribute if a.name == "index")
                steps.append(Cut(names[index], [grp.input[0]], [grp.output[0]]))
            else:
                fixed = {}
                for i in grp.input[1:]:
                    if i in inits:
                        fixed[i] = numpy_helper.to_array(inits[i])
                    elif i in consts:
                        fixed[i] = numpy_helper.to_array(next(a.t for a in consts[i].attribute if a.name == "value"))
                steps.append(Cut(None, list(grp.input), [grp.output[0]], fixed))
            continue
        produced = [o for n in grp for o in n.output if o]
        made = set(produced)
        ins = sorted(reads[k] - made, key=lambda v: v)
        outs = [o for o in produced if last_use.get(o, -1) > k]
        used = {i for n in grp for i in n.input if i}
        graph = helper.make_graph(
            [consts[c] for c in sorted(used & consts.keys())] + list(grp), f"segment{k}",
            [_info(v, types) for v in ins], [_info(v, types) for v in outs],
            [inits[i] for i in sorted(used & inits.keys())])
        model = helper.make_model(graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
        model.functions.extend(proto.functions)
        steps.append(Segment(model.SerializeToString(), ins, outs))
    last: list[list[str]] = [[] for _ in steps]
    for v, k in last_use.items():
        if k < len(steps):
            last[k].append(v)
    return Split(steps, g.input[0].name, output, last)


def _value_types(proto: Any, same_shape: list[bool]) -> dict[str, tuple[int, int, int | None]]:
    """(element type, rank, channels or None) of every value, by onnx shape inference on a stand-in graph.

    Cuts that keep their input's shape (norms, global modules) stand in as ``Identity``; other cuts as a
    ``Reshape`` to an unknown rank-4 shape (their channels are read downstream from the weights).
    """
    from onnx import TensorProto, helper, shape_inference

    model = type(proto)()
    model.CopyFrom(proto)
    del model.graph.value_info[:]
    any4 = "__anime_any_rank4"
    nodes = []
    for n in model.graph.node:
        if n.domain == CUT_DOMAIN:
            index = next(a.i for a in n.attribute if a.name == "index")
            if same_shape[index]:
                nodes.append(helper.make_node("Identity", [n.input[0]], [n.output[0]]))
            else:
                nodes.append(helper.make_node("Reshape", [n.input[0], any4], [n.output[0]]))
        else:
            nodes.append(n)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.input.append(helper.make_tensor_value_info(any4, TensorProto.INT64, [4]))
    inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=False)
    out = {}
    for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        t = v.type.tensor_type
        if not t.elem_type:
            continue
        rank = len(t.shape.dim) if t.HasField("shape") else -1
        channels = t.shape.dim[1].dim_value if rank == 4 and t.shape.dim[1].HasField("dim_value") else None
        out[v.name] = (t.elem_type, rank, channels)
    return out


def _info(name: str, types: dict[str, tuple[int, int, int | None]]) -> Any:
    """A segment's input or output: its element type and rank; only a feature map's channels are fixed."""
    from onnx import TensorProto, helper

    elem, rank, channels = types.get(name, (TensorProto.FLOAT, -1, None))
    if rank < 0:
        return helper.make_tensor_value_info(name, elem, None)
    dims: list[Any] = [f"{name}_{i}" for i in range(rank)]
    if channels:
        dims[1] = channels
    return helper.make_tensor_value_info(name, elem, dims)


# -- running -----------------------------------------------------------------------------------
def ort_runner(graph: bytes, threads: int | None = None, device: torch.device | None = None) -> Runner:
    """A segment on ONNX Runtime (the CPU, or ``device``'s provider).

    All segments share one CPU arena (registered once in ONNX Runtime's environment): a session's
    own arena keeps its peak, and a generator cut at every norm has dozens of sessions (AnimeGAN v2:
    27); without an arena every large map was a fresh ``mmap``, page-faulted anew (as were the
    copies ``session.run`` returns, so outputs are bound in the arena and handed over as they are).
    No spinning after a run: torch runs the norm that follows, and a spinning pool took one of its cores.
    """
    ort = require()
    options = session_options(threads)
    options.enable_mem_pattern = False  # sizes change from tile to tile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if device is None or device.type == "cpu":
        _shared_arena(ort)
        options.add_session_config_entry("session.use_env_allocators", "1")
    session = ort.InferenceSession(graph, options, providers=providers(device or torch.device("cpu")))

    def run(feed: dict[str, np.ndarray], outputs: list[str]) -> list[Any]:
        binding = session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        # the outputs stay in the arena's blocks (no copy, no fresh pages): torch tensors that own them
        return [torch.from_dlpack(v) for v in binding.get_outputs()]

    return run


_ARENA = threading.Lock()
_ARENA_MADE: list[bool] = []


def _shared_arena(ort: Any) -> None:
    """Register one CPU arena allocator with ONNX Runtime's environment, once per process."""
    with _ARENA:
        if not _ARENA_MADE:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _ARENA_MADE.append(True)


class SegmentedGenerator(nn.Module):
    """The generator as graph segments on a backend and its own global modules in torch (see the module doc).

    ``named_modules()`` yields the torch generator's modules under their own names (not as children
    of this module), so the plan's keys match; ``runs`` counts the segments run on the backend.
    On meta tensors (a whole-image replay of the sweep) it runs the torch generator's lean trace,
    whose modules are the same objects.
    """

    def __init__(self, generator: nn.Module, split_: Split, runner: Callable[[bytes], Runner],
                 calls: frozenset[str] = frozenset()) -> None:
        super().__init__()
        object.__setattr__(self, "torch_generator", generator)  # not a child: its modules keep their names
        self.calls = calls
        self.split = split_
        self.runners = [runner(s.graph) if isinstance(s, Segment) else None for s in split_.steps]
        self.modules_by_name = dict(generator.named_modules())
        #: where the torch modules run (the segments take and give CPU arrays)
        self.device = next(generator.parameters(), torch.empty(0)).device
        self.runs = 0
        made = {o for step in split_.steps if isinstance(step, Segment) for o in step.outputs}
        #: per step: the cut's input when a segment made it and this cut is its last reader
        self.donatable = [{v for v in split_.last[k] if v in made} for k in range(len(split_.steps))]

    def named_modules(self, memo: set[nn.Module] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Module]]:
        yield prefix, self
        for name, m in self.torch_generator.named_modules():
            if m is not self.torch_generator:
                yield name, m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_meta:
            from anime_core.inference.tiling import lean

            return lean(self.torch_generator, self.calls)(x)
        live: dict[str, Any] = {self.split.input: x}
        for k, step in enumerate(self.split.steps):
            if isinstance(step, Segment):
                feed = {name: _numpy(live[name]) for name in step.inputs}
                runner = self.runners[k]
                assert runner is not None
                outs = runner(feed, step.outputs)
                self.runs += 1
                live.update(zip(step.outputs, outs))
            elif step.name is not None:
                value = _torch(live[step.inputs[0]], self.device)
                if step.inputs[0] in self.donatable[k]:
                    donate(value)  # read by nothing after this cut: a norm may write its output into it
                live[step.outputs[0]] = self.modules_by_name[step.name](value)
            else:
                live[step.outputs[0]] = _resize(step, live, self.device)
            for name in self.split.last[k]:
                live.pop(name, None)
        return _torch(live[self.split.output], x.device).float()


def _numpy(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return np.ascontiguousarray(v.detach().cpu().numpy())
    return v  # type: ignore[no-any-return]


def _torch(v: Any, device: torch.device) -> torch.Tensor:
    return (v if isinstance(v, torch.Tensor) else torch.from_numpy(v)).to(device)


def _resize(step: Cut, live: dict[str, Any], device: torch.device) -> torch.Tensor:
    """A bilinear align-corners ``Resize`` in torch, at the size the graph computed (sizes, or scales)."""
    x = _torch(live[step.inputs[0]], device)

    def value(i: int) -> np.ndarray | None:
        if len(step.inputs) <= i or not step.inputs[i]:
            return None
        name = step.inputs[i]
        got = step.constants.get(name)
        return np.asarray(got if got is not None else _numpy(live[name]))

    sizes = value(3)
    if sizes is not None and sizes.size:
        size = (int(sizes[-2]), int(sizes[-1]))
    else:
        scales = value(2)
        assert scales is not None
        size = (math.floor(x.shape[-2] * float(scales[-2])), math.floor(x.shape[-1] * float(scales[-1])))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def verify_segments(net: SegmentedGenerator, pipe: TranslatePipeline) -> float:
    """Max |segmented - torch generator| on the export's two check inputs; above :data:`FP32_TOLERANCE`: ExportError."""
    _, checks, _ = _inputs(pipe)
    worst = 0.0
    with torch.inference_mode():
        for (x,) in checks:
            want = pipe.generator(x.to(pipe.device)).float().cpu()
            got = net(x)
            worst = max(worst, float((got - want).abs().max()) if got.shape == want.shape else math.inf)
    if not worst <= FP32_TOLERANCE:
        raise ExportError(f"the segmented ONNX graph differs from PyTorch by up to {worst:.3g} (tolerance "
                          f"{FP32_TOLERANCE:g}); tiles cannot run on this backend")
    return worst


# -- the tiles of a graph pipeline -------------------------------------------------------------
class SegmentTiles:
    """What a graph pipeline made from a torch pipeline tiles with: the torch pipeline's plan, a segmented net.

    ``store(tag, build)``: the cut export's bytes from the export cache (built by ``build`` when
    missing); ``runner(graph)``: a segment on the graph's backend. Where ``on_torch`` says so for the
    graph's precision, the tiles run on the torch pipeline in that precision instead (same plan and
    sweep; see the OpenVINO backend for why).
    """

    def __init__(self, pipe: TranslatePipeline, store: Callable[[str, Callable[[], bytes]], bytes],
                 runner: Callable[[bytes], Runner], on_torch: Callable[[str], bool] | None = None) -> None:
        self.pipe, self.store, self.runner = pipe, store, runner
        #: ``on_torch(precision)``: whether tiles in that precision run on the torch pipeline, in that
        #: precision, instead of the segments (a backend whose cuts cost more than its convolutions)
        self.on_torch = on_torch or (lambda precision: False)
        self._nets: dict[frozenset[str], SegmentedGenerator] = {}
        self._failed: set[frozenset[str]] = set()

    def net(self, plan: TilePlan) -> SegmentedGenerator | None:
        """The segmented generator whose cuts are the plan's global calls (one export per set of contexts).

        None when the generator does not export in segments that match it (said once, on stderr): its
        tiles then run on the torch pipeline, exactly but at torch's speed.
        """
        calls = frozenset(k[0] for k in plan.contexts)
        if calls in self._failed:
            return None
        try:
            return self._net(calls)
        except ExportError as exc:
            self._failed.add(calls)
            print(f"note: tiles run on torch: {exc}", file=sys.stderr)
            return None

    def _net(self, calls: frozenset[str]) -> SegmentedGenerator:
        if calls not in self._nets:
            names = cut_names(self.pipe.generator, calls)
            tag = "cut-" + _short(json.dumps(names))

            def build() -> bytes:
                data = cut_export(self.pipe, calls).SerializeToString()
                verify_segments(self._make(data, calls, ort_runner), self.pipe)  # the split, on ONNX Runtime in fp32
                return data

            data = self.store(tag, build)
            self._nets[calls] = self._make(data, calls, self.runner)
        return self._nets[calls]

    def _make(self, data: bytes, calls: frozenset[str], runner: Callable[[bytes], Runner]) -> SegmentedGenerator:
        import onnx

        proto = onnx.load_from_string(data)
        names = json.loads(next(p.value for p in proto.metadata_props if p.key == CUTS_KEY))
        modules = dict(self.pipe.generator.named_modules())
        parts = split(proto, [norm_spec(modules[n]) is not None or is_global_module(modules[n]) for n in names])
        return SegmentedGenerator(self.pipe.generator, parts, runner, calls)


def _short(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]

