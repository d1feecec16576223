"""The instruments tiled inference uses to look inside a generator without knowing its code.

- :class:`Intercept` routes every submodule call through a handler (by patching the instance's
  ``forward`` for the duration of a ``with`` block, as Accelerate's hooks do), naming each call
  ``(module name, call index)`` so the same call can be found again in every tile and pass.
- :class:`Shadow` runs a generator on meta tensors (shapes only, no compute, no memory) and
  follows every tensor: whether it depends on the image, how far its receptive field reaches in
  input pixels, which whole-image feature maps it is computed from, and the largest tensor made.
- :class:`Replay` runs the generator on the whole image where everything large stays on the meta
  device: only small (low-resolution) tensors are computed for real.
- :class:`TileGeometry` makes resizes with ``align_corners=True`` sample the same positions in a
  tile as in the whole image (their sampling grid depends on the whole map's size).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode, handle_torch_function, has_torch_function
from torch.utils._pytree import tree_flatten, tree_map_only

Key = tuple[str, int]  # (module name, how many calls of that module came before in this forward)
Handler = Callable[[Key, nn.Module, Callable[..., Any], tuple, dict], Any]

INFINITE = math.inf
#: a tile's low-precision resize converts at most this many bytes of float32 output at a time
RESIZE_CHUNK_BYTES = 64 << 20
#: a strip's resize widens at most this many bytes of float32 rows per kernel call (64 MiB chunks took the holes the
#: next strip's maps needed: the heap grew 64 MiB a strip)
ROW_CHUNK_BYTES = 16 << 20
_CHEAP = {"__get__", "dim", "size", "numel", "is_floating_point", "__len__", "element_size", "stride"}


class Intercept:
    """``with Intercept(root, handler):`` every call of a submodule of ``root`` goes through ``handler``.

    ``handler(key, module, forward, args, kwargs)`` returns the call's result; ``forward`` is the
    module's own. Inside :meth:`plain` calls run unhandled (and are not counted).
    """

    def __init__(self, root: nn.Module, handler: Handler) -> None:
        self.root, self.handler = root, handler
        self.counts: Counter[str] = Counter()
        self._plain = 0
        self._saved: list[tuple[nn.Module, Any]] = []

    def __enter__(self) -> Intercept:
        for name, module in self.root.named_modules():
            if module is self.root:
                continue
            orig = module.forward
            self._saved.append((module, module.__dict__.get("forward")))
            module.forward = self._wrap(name, module, orig)
        return self

    def __exit__(self, *exc: object) -> None:
        for module, saved in self._saved:
            if saved is None:
                del module.forward
            else:
                module.forward = saved
        self._saved.clear()

    def _wrap(self, name: str, module: nn.Module, orig: Callable[..., Any]) -> Callable[..., Any]:
        def forward(*args: Any, **kwargs: Any) -> Any:
            if self._plain:
                return orig(*args, **kwargs)
            key = (name, self.counts[name])
            self.counts[name] += 1
            return self.handler(key, module, orig, args, kwargs)

        return forward

    def reset(self) -> None:
        """Start a new forward: call indices count from 0 again."""
        self.counts.clear()

    @contextmanager
    def plain(self) -> Iterator[None]:
        self._plain += 1
        try:
            yield
        finally:
            self._plain -= 1


def tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def to_meta(tree: Any) -> Any:
    return tree_map_only(torch.Tensor, lambda t: t if t.is_meta else t.to("meta"), tree)


_SAME_SHAPE = {"instance_norm", "group_norm", "batch_norm", "layer_norm", "dropout", "leaky_relu", "relu", "tanh"}
#: arithmetic whose result has the broadcast shape of its tensors: shapes computed here, as torch's meta kernels
#: for it are Python decompositions whose first call imports ``torch._dynamo`` (1.0 s in a fresh process)
_BROADCAST = {"add", "sub", "mul", "div", "true_divide", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
              "__rmul__", "__truediv__", "__rtruediv__"}
#: in-place twins: the result is the first argument
_IN_PLACE = {"add_", "sub_", "mul_", "div_", "__iadd__", "__isub__", "__imul__", "__itruediv__", "relu_",
             "leaky_relu_"}
_CAT = {"cat", "concat", "concatenate"}


def meta_call(func: Any, args: tuple, kwargs: dict) -> Any:
    """``func`` on meta copies of its arguments: the result's shape without computing it.

    Norms, resizes and padding get their shapes directly: their meta kernels are Python
    decompositions that cost milliseconds per call (and seconds to import on first use).
    """
    name = getattr(func, "__name__", "")
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is not None and x.is_meta and name in _IN_PLACE:
        return x
    if name in _BROADCAST and len(args) == 2 and "out" not in kwargs:
        shape = _broadcast([a.shape for a in args if isinstance(a, torch.Tensor)])
        if shape is not None:
            return torch.empty(shape, dtype=torch.result_type(*args), device="meta")
    if name in _CAT and args and isinstance(args[0], (list, tuple)) and args[0] and "out" not in kwargs:
        parts = list(args[0])
        dim = _arg(args, kwargs, 1, "dim", 0)
        if all(isinstance(t, torch.Tensor) and t.dim() == parts[0].dim() for t in parts) and parts[0].dim():
            d = dim % parts[0].dim()
            shape = list(parts[0].shape)
            shape[d] = sum(t.shape[d] for t in parts)
            dtype = functools.reduce(torch.promote_types, (t.dtype for t in parts))
            return torch.empty(shape, dtype=dtype, device="meta")
    if x is not None and x.dim() == 4:
        if name in ("conv2d", "conv_transpose2d"):
            found = _conv_shape(name, x, args, kwargs)
            if found is not None:
                return torch.empty(found, dtype=x.dtype, device="meta")
        if name in _SAME_SHAPE:
            return torch.empty(x.shape, dtype=x.dtype, device="meta")
        if name == "interpolate":
            return torch.empty((*x.shape[:2], *resized(x, _arg(args, kwargs, 1, "size", None),
                                                      _arg(args, kwargs, 2, "scale_factor", None))),
                               dtype=x.dtype, device="meta")
        if name in ("pad", "reflect_pad"):
            hw = padded(x.shape[-2:], list(_arg(args, kwargs, 1, "pad", ())) + [0] * 4)
            return torch.empty((*x.shape[:2], *hw), dtype=x.dtype, device="meta")
        if name in ("resize_reflect", "resize_reflect_conv"):
            hw = padded(resized(x, args[1], args[2]), args[3])
            y = torch.empty((*x.shape[:2], *hw), dtype=x.dtype, device="meta")
            if name == "resize_reflect":
                return y
            found = _conv_shape("conv2d", y, (y, *args[4:6], args[6], 0, *args[7:]), {})
            if found is not None:
                return torch.empty(found, dtype=x.dtype, device="meta")
    return func(*to_meta(args), **to_meta(kwargs))


_SHAPED = _SAME_SHAPE | _BROADCAST | _IN_PLACE | _CAT | {"interpolate", "pad", "resize_reflect", "reflect_pad",
                                                          "resize_reflect_conv", "conv2d", "conv_transpose2d"}


def _conv_shape(name: str, x: torch.Tensor, args: tuple, kwargs: dict) -> tuple[int, ...] | None:
    """Output shape of ``F.conv2d`` / ``F.conv_transpose2d`` on (N, C, H, W) ``x`` (torch's formulas), or None
    where the arguments are not the plain ones (then the meta kernel decides)."""
    weight = _arg(args, kwargs, 1, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        return None
    transposed = name == "conv_transpose2d"
    stride = _arg(args, kwargs, 3, "stride", 1)
    padding = _arg(args, kwargs, 4, "padding", 0)
    if transposed:
        extra = _arg(args, kwargs, 5, "output_padding", 0)
        groups = _arg(args, kwargs, 6, "groups", 1)
        dilation = _arg(args, kwargs, 7, "dilation", 1)
    else:
        extra, dilation, groups = 0, _arg(args, kwargs, 5, "dilation", 1), _arg(args, kwargs, 6, "groups", 1)
    if isinstance(padding, str):
        if transposed or padding not in ("same", "valid"):
            return None
        if padding == "same":
            return (x.shape[0], weight.shape[0], x.shape[2], x.shape[3])
        padding = 0
    try:
        s, p, d, e = (tuple(int(i) for i in _pair(v)) for v in (stride, padding, dilation, extra))
    except (TypeError, ValueError):
        return None
    k = weight.shape[2:]
    if transposed:
        size = [(x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + e[i] + 1 for i in (0, 1)]
        channels = weight.shape[1] * int(groups)
    else:
        size = [(x.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in (0, 1)]
        channels = weight.shape[0]
    return (x.shape[0], channels, *size) if min(size) > 0 else None


def _broadcast(shapes: list[torch.Size]) -> tuple[int, ...] | None:
    """The broadcast shape (``torch.broadcast_shapes`` imports sympy: 0.3 s), None if none or they do not broadcast."""
    if not shapes:
        return None
    n = max(len(s) for s in shapes)
    out = []
    for i in range(n):
        sizes = {s[i - n + len(s)] for s in shapes if i - n + len(s) >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class MetaShapes(TorchFunctionMode):
    """The functions :func:`meta_call` knows the shapes of take its short cut (no torch meta kernel, no import of
    ``torch._dynamo``); everything else runs as it is."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _SHAPED:
            return meta_call(func, args, kwargs)
        return func(*args, **kwargs)


def resized(x: torch.Tensor, size: Any, scale: Any) -> tuple[int, int]:
    """The (h, w) that ``F.interpolate(x, size, scale_factor)`` returns."""
    if size is not None:
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    sy, sx = _pair(scale)
    return math.floor(x.shape[-2] * sy), math.floor(x.shape[-1] * sx)


def padded(hw: Any, pad: Any) -> tuple[int, int]:
    """(h, w) after a 2-d ``pad`` of (left, right, top, bottom)."""
    return hw[0] + pad[2] + pad[3], hw[1] + pad[0] + pad[1]


def resize_reflect(x: torch.Tensor, size: Any, scale: Any, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(F.interpolate(x, size, scale, bilinear, align_corners=True), pad, reflect)`` as one call.

    The tiles' :func:`~anime_core.inference.tiling.lean` trace calls it where a resize feeds only a
    reflection pad (AnimeGAN v2's decoder: the up-sampled map goes straight into a padded 3x3
    convolution), so a strip's resize (:class:`TileGeometry`) writes into the padded map: the
    unpadded copy, the largest map of a tile's forward (128 channels at full size), is never made.
    Anywhere else the two calls run as they are: the same values.
    """
    if has_torch_function((x,)):
        return handle_torch_function(resize_reflect, (x,), x, size, scale, pad)
    return F.pad(F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=True), pad,
                 mode="reflect")


def resize_reflect_conv(x: torch.Tensor, size: Any, scale: Any, pad: tuple[int, int, int, int], weight: torch.Tensor,
                        bias: torch.Tensor | None, stride: Any, dilation: Any, groups: int) -> torch.Tensor:
    """``F.conv2d(resize_reflect(x, size, scale, pad), weight, bias, stride, 0, dilation, groups)`` as one call.

    The lean trace calls it where the padded, up-sampled map feeds only an unpadded convolution (AnimeGAN v2's
    decoder: ``block_d`` and ``block_e`` start so), so that a strip (:class:`TileGeometry`) makes the padded map a
    band of rows at a time and convolves each band: the largest map of a tile's forward (128 channels at full
    size, 262 MB of a 2048 px strip in bf16) is never whole. Anywhere else the two calls run as they are.
    """
    if has_torch_function((x,)):
        return handle_torch_function(resize_reflect_conv, (x,), x, size, scale, pad, weight, bias, stride, dilation,
                                     groups)
    return F.conv2d(resize_reflect(x, size, scale, pad), weight, bias, stride, 0, dilation, groups)


def reflect_pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, pad, mode="reflect")`` into a block of a rounded size (:func:`classed_empty`); the same values.

    The tiles' :func:`~anime_core.inference.tiling.lean` trace calls it for every reflection pad: each tile
    makes the same padded copies in turn, and copies a few rows or channels apart in size (a 3 px pad
    after a 1 px one) now fit the blocks the ones before them freed."""
    if has_torch_function((x,)):
        return handle_torch_function(reflect_pad, (x,), x, pad)
    if x.dim() != 4 or x.is_meta:
        return F.pad(x, pad, mode="reflect")
    out = classed_empty((*x.shape[:2], *padded(x.shape[-2:], pad)), x.dtype, x.device, _channels_last(x))
    return torch.ops.aten.reflection_pad2d.out(x, list(pad), out=out)


def classed_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, channels_last: bool
                  ) -> torch.Tensor:
    """An empty (N, C, H, W) map in a memory block rounded up to a size class (a sixteenth of its power of two).

    A sweep's tiles allocate the same maps in turn; maps of nearly the same size (a tile a few rows
    shorter, a pad a few pixels wider) otherwise never fit the holes the ones before them left, and the
    heap grows past them (AnimeGAN v2, 2048x1451 in 3 strips: 0.1-0.2 GB)."""
    need = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
    unit = 1 << max(0, need.bit_length() - 5)
    flat = torch.empty(-(-need // unit) * unit, dtype=torch.uint8, device=device)[:need].view(dtype)
    if channels_last:
        n, c, h, w = shape
        return flat.view(n, h, w, c).permute(0, 3, 1, 2)
    return flat.view(shape)


def reflect_borders(y: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Fill the ``pad`` (left, right, top, bottom) borders of ``y`` in place by reflection of its interior, as
    ``F.pad(..., mode="reflect")`` does (the edge row or column itself is not repeated); returns ``y``."""
    left, right, top, bottom = pad
    h, w = y.shape[-2] - top - bottom, y.shape[-1] - left - right
    rows = slice(top, top + h)
    for k in range(1, left + 1):
        y[..., rows, left - k] = y[..., rows, left + k]
    for k in range(1, right + 1):
        y[..., rows, left + w - 1 + k] = y[..., rows, left + w - 1 - k]
    for k in range(1, top + 1):  # whole rows, the corners included
        y[..., top - k, :] = y[..., top + k, :]
    for k in range(1, bottom + 1):
        y[..., top + h - 1 + k, :] = y[..., top + h - 1 - k, :]
    return y


def _reflected(i: int, n: int) -> int:
    """The row of a map of ``n`` rows that row ``i`` (-n < i < 2n - 1) of its reflection padding copies."""
    i = -i if i < 0 else i
    return 2 * (n - 1) - i if i >= n else i


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _hw(t: torch.Tensor) -> tuple[int, int] | None:
    return (t.shape[-2], t.shape[-1]) if t.dim() == 4 else None


def _pair(v: Any) -> tuple[float, float]:
    if isinstance(v, (tuple, list)):
        return float(v[0]), float(v[-1])
    return float(v), float(v)


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def spatial_extent(name: str, args: tuple, kwargs: dict, out: list[torch.Tensor]) -> float | None:
    """How far (in pixels of its input map) one output pixel of a known spatial op reaches; None: not one.

    Convolutions reach half their dilated kernel; a transposed convolution half its kernel divided
    by its stride; pools half their window; resizes one (linear), two (cubic) or half (nearest)
    input pixel. Padding reaches nothing: at an interior tile edge the halo covers it.
    """
    if name in ("conv1d", "conv2d", "conv3d"):
        k = args[1].shape[-1], args[1].shape[-2]
        d = _pair(_arg(args, kwargs, 5, "dilation", 1))
        return max((k[0] - 1) * d[0], (k[1] - 1) * d[1]) / 2
    if name in ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        k = args[1].shape[-1], args[1].shape[-2]
        s = _pair(_arg(args, kwargs, 3, "stride", 1))
        return max(k[0] / s[0], k[1] / s[1]) / 2 + 0.5
    if "pool" in name and "adaptive" not in name:
        window = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
        return (max(window) - 1) / 2
    if name == "interpolate":
        mode = _arg(args, kwargs, 3, "mode", "nearest")
        return {"nearest": 0.5, "nearest-exact": 0.5, "bicubic": 2.0}.get(mode, 1.0) + (
            args[0].shape[-1] / out[0].shape[-1] if mode == "area" else 0.0)
    if name == "index_select" and _arg(args, kwargs, 1, "dim", 0) in (-2, -1, 2, 3):
        return 1.0  # gathering rows or columns: assumed a resampling (TF1's legacy resize), as in practice
    if name in ("pixel_shuffle", "pixel_unshuffle", "pad", "__getitem__", "reflection_pad2d",
                "replication_pad2d", "constant_pad_nd"):
        return 0.0
    return None


@dataclass
class Info:
    """What :class:`Shadow` knows about one tensor."""

    local: bool = False  # computed by tile work from the image (else: a constant, or from whole-image maps)
    spatial: bool = False  # a feature map (of the image or of a whole-image map), not a parameter
    radius: float = 0.0  # how far from its pixel a tile's value depends on the tile's content, in input px


@dataclass(eq=False)
class Shadow(TorchFunctionMode):
    """Run on meta tensors, following locality, receptive field and sizes (see the module docstring).

    ``tile``: the (h, w) of the input. ``budget``: in whole-image runs, a tensor larger than this
    many bytes is never held whole, so it and all that depends on it count as tile work.
    Every op is recorded, so :meth:`live` can tell which tensors the results depend on.
    """

    tile: tuple[int, int]
    budget: float = INFINITE
    max_bytes: int = 0
    uses_aligned_resize: bool = False
    #: (input (h, w), output (h, w)) of each ``align_corners=True`` resize, in call order
    aligned: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    _info: dict[int, Info] = field(default_factory=dict)
    _keep: list[torch.Tensor] = field(default_factory=list)
    _edges: list[tuple[list[int], list[int]]] = field(default_factory=list)
    _quiet: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Shapes only, nothing followed (inside a module computed on the whole image)."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def info(self, t: torch.Tensor) -> Info:
        return self._info.get(id(t), Info())

    def mark(self, t: torch.Tensor, info: Info) -> None:
        self._info[id(t)] = info
        self._keep.append(t)  # keeps ids unique while the run lasts

    def live(self, sinks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The tensors ``sinks`` were computed from (themselves included)."""
        alive = {id(t) for t in sinks}
        for ins, outs in reversed(self._edges):
            if alive.intersection(outs):
                alive.update(ins)
        return [t for t in self._keep if id(t) in alive]

    def scale(self, t: torch.Tensor) -> float:
        """A feature map's height relative to the input's."""
        return t.shape[-2] / self.tile[0]

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _CHEAP:
            return func(*args, **kwargs)
        out = meta_call(func, args, kwargs)
        if self._quiet:
            return out
        inputs, outs = tensors((args, kwargs)), tensors(out)
        if not outs:
            return out
        ins = [self.info(t) for t in inputs]
        maps = [t for t, i in zip(inputs, ins) if i.spatial]
        local = any(i.local for i in ins)
        if not local and maps and max(nbytes(t) for t in outs) > self.budget:
            local = True  # too large to hold whole: tiles compute it
        radius = 0.0
        if maps:
            radius = max(self.info(t).radius for t in maps) + self._reach(name, args, kwargs, maps[0], outs)
        for t in outs:
            if local:
                self.max_bytes = max(self.max_bytes, nbytes(t))
            self.mark(t, Info(local, bool(maps), radius))
        self._edges.append(([id(t) for t in inputs], [id(t) for t in outs]))
        if name == "interpolate" and _arg(args, kwargs, 4, "align_corners", None):
            self.uses_aligned_resize = True
            if hw_in := _hw(inputs[0]):
                self.aligned.append((hw_in, _hw(outs[0]) or hw_in))
        return out

    def _reach(self, name: str, args: tuple, kwargs: dict, first: torch.Tensor, outs: list[torch.Tensor]) -> float:
        """Receptive-field growth of one op in input pixels (infinite for unknown ops that mix positions)."""
        hw_in = _hw(first)
        extent = spatial_extent(name, args, kwargs, outs)
        if extent is not None:
            return extent * (self.tile[0] / hw_in[0]) if hw_in else 0.0
        # any other op is per pixel as long as it keeps its input's spatial size
        if all(_hw(t) == hw_in for t in outs):
            return 0.0
        return INFINITE


class Replay(TorchFunctionMode):
    """Whole-image run in which tensors over ``budget`` bytes (and all that depend on them) stay meta.

    Inside :meth:`real` (a whole-image map being computed) every op runs for real.
    """

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget = budget
        self._real = 0

    @contextmanager
    def real(self) -> Iterator[None]:
        self._real += 1
        try:
            yield
        finally:
            self._real -= 1

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self._real or getattr(func, "__name__", "") in _CHEAP:
            return func(*args, **kwargs)
        if any(t.is_meta for t in tensors((args, kwargs))):
            return meta_call(func, args, kwargs)
        shape_only = meta_call(func, args, kwargs)
        if any(nbytes(t) > self.budget for t in tensors(shape_only)):
            return shape_only
        return func(*args, **kwargs)


def map_factor(length: int, n: int) -> float:
    """Pixels of the input per pixel of a map of ``n`` px computed from ``length`` px: a power of two when near one.

    A side that is not a multiple of the downsampling (an image's last tile) gives a map a pixel
    short or long (1021 px -> 510 at half resolution); the factor is still 2.
    """
    ratio = length / n
    p2 = 2.0 ** round(math.log2(ratio))
    return p2 if abs(ratio / p2 - 1) < 0.1 else ratio


@dataclass(eq=False)
class TileGeometry(TorchFunctionMode):
    """Where the current tile lies in the whole (padded) image, for resizes with ``align_corners=True``.

    Such a resize maps output pixel ``i`` to input position ``i * (n_in - 1) / (n_out - 1)`` with
    the sizes of the *whole* map, which a tile cannot know; this mode recomputes it from the
    tile's offset and size and the sizes of the whole image's maps at the same call (``aligned``:
    the input and output (h, w) of each such resize of a whole-image run, in call order, from
    :class:`Shadow`; one instance per tile forward, as it counts the calls).
    """

    offset: tuple[int, int]
    tile: tuple[int, int]
    whole: tuple[int, int]
    aligned: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is resize_reflect and args[0].dim() == 4:
            return self._resize(*args)
        if func is resize_reflect_conv and args[0].dim() == 4:
            return self._resize(*args[:4], conv=args[4:])
        if func is F.interpolate and _arg(args, kwargs, 4, "align_corners", None):
            mode = _arg(args, kwargs, 3, "mode", "nearest")
            if mode == "bilinear" and args[0].dim() == 4:
                size, scale = _arg(args, kwargs, 1, "size", None), _arg(args, kwargs, 2, "scale_factor", None)
                return self._resize(args[0], size, scale)
        return func(*args, **kwargs)

    def _resize(self, x: torch.Tensor, size: Any, scale: Any, pad: tuple[int, int, int, int] | None = None,
                conv: tuple | None = None) -> torch.Tensor:
        """Bilinear resampling at the whole map's positions, then reflection ``pad`` if given (:func:`resize_reflect`),
        then the unpadded convolution ``conv`` (weight, bias, stride, dilation, groups) if given
        (:func:`resize_reflect_conv`).

        A tile as wide as the whole map (a strip: :func:`~anime_core.inference.tileplan.plan_tiles`
        makes them for such generators) resizes its width with the library's own kernel, which then
        samples the whole map's columns, and blends rows itself (:meth:`_rows`); any other tile
        samples an affine grid (one ``grid_sample``, 3.5-10x slower than the kernel on a bf16 map).
        """
        out = resized(x, size, scale)
        whole = self.aligned[self.calls] if self.calls < len(self.aligned) else None
        self.calls += 1
        axes = []
        for axis in (0, 1):
            big = (whole[0][axis], whole[1][axis]) if whole else None
            off_in, big_in = self._whole(axis, x.shape[2 + axis], big[0] if big else None)
            off_out, big_out = self._whole(axis, out[axis], big[1] if big else None)
            axes.append((off_in, big_in, off_out, big_out))
        whole_w = axes[1] == (0, x.shape[3], 0, out[1])
        strip = whole_w and axes[0] != (0, x.shape[2], 0, out[0])  # as wide as the map, but not all of it
        if strip and x.shape[2] > 1 and out[0] > 1 and all(float(v).is_integer() for v in axes[0]):
            if conv is not None:
                return self._banded(x, out, self._sources(x, out, *axes[0]), pad or (0, 0, 0, 0), conv)
            return self._rows(x, out, self._sources(x, out, *axes[0]), pad=pad)
        y = self._sampled(x, out, axes, whole_w)
        y = F.pad(y, pad, mode="reflect") if pad is not None else y
        if conv is not None:
            weight, bias, stride, dilation, groups = conv
            return F.conv2d(y, weight, bias, stride, 0, dilation, groups)
        return y

    def _sampled(self, x: torch.Tensor, out: tuple[int, int], axes: list[tuple[float, int, float, int]],
                 whole_w: bool) -> torch.Tensor:
        if whole_w and axes[0] == (0, x.shape[2], 0, out[0]):  # the whole map: the untiled call
            return F.interpolate(x, size=out, mode="bilinear", align_corners=True)
        theta = torch.zeros(1, 2, 3, dtype=torch.float64)
        for row, axis in ((1, 0), (0, 1)):  # grid_sample's first coordinate is x (width)
            theta[0, row, row], theta[0, row, 2] = self._affine(x.shape[2 + axis], out[axis], *axes[axis])
        # in float32 whatever autocast says: grid positions in bf16 (8 significant bits) are off by whole
        # pixels in maps of a few hundred (bf16 tiles were 1.5/255 off the untiled output on average)
        with torch.autocast(x.device.type, enabled=False):
            grid = F.affine_grid(theta.to(x.device, torch.float32), [1, 1, *out], align_corners=True)
            grid = grid.expand(x.shape[0], -1, -1, -1)
            if x.dtype == torch.float32:
                return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
            # a low-precision map: float32 a few channels at a time, into an output in the map's dtype (a whole
            # float32 copy in and out was the sweep's largest transient: 325 MB per tile at 2048 px in bf16)
            y = torch.empty((x.shape[0], x.shape[1], *out), dtype=x.dtype, device=x.device,
                            memory_format=torch.channels_last if _channels_last(x) else torch.contiguous_format)
            step = max(1, RESIZE_CHUNK_BYTES // (4 * x.shape[0] * out[0] * out[1]))
            for c in range(0, x.shape[1], step):
                y[:, c: c + step] = F.grid_sample(x[:, c: c + step].float(), grid, mode="bilinear",
                                                  padding_mode="border", align_corners=True)
        return y

    @staticmethod
    def _sources(x: torch.Tensor, out: tuple[int, int], off_in: float, big_in: int, off_out: float, big_out: int
                 ) -> tuple[list[int], list[int], list[float]]:
        """For each output row of a strip's resize: its two input rows and the weight of the second, as the untiled
        kernel computes them (its float32 ``scale * row`` at the whole map's positions)."""
        scale = torch.tensor(big_in - 1, dtype=torch.float32) / (big_out - 1)
        src = scale * torch.arange(int(off_out), int(off_out) + out[0], dtype=torch.float32)
        top = src.floor()
        weights = (src - top).tolist()
        last_row = x.shape[2] - 1  # rows past the tile's input (its outer halo) clamp to its edge, as grid_sample's
        rows = [min(max(r, 0), last_row) for r in (top.long() - int(off_in)).tolist()]  # border padding does
        nexts = [min(r + 1, last_row) if r + int(off_in) < big_in - 1 else r for r in rows]
        return rows, nexts, weights

    def _rows(self, x: torch.Tensor, out: tuple[int, int], sources: tuple[list[int], list[int], list[float]],
              pad: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """A strip's resize: its width by the library's kernel, its rows at the whole map's positions.

        The kernel resizes whole rows (``align_corners=True`` with as many rows out as in: each row is
        copied, its columns sampled as in the untiled call), in float32 a few rows at a time; then
        each output row blends its two input rows with the weights the untiled kernel computes
        (:meth:`_sources`), so a bf16 map is rounded once, as untiled: 3.4e-5 of the values of
        a 2048 px strip differed by one bf16 step (float rounding order), against 33% with a bf16 row
        pass. 1.2x the untiled kernel on the same rows, where ``grid_sample`` took 3.5x. With ``pad`` the rows
        go into the interior of the padded map, whose borders are then reflected (:func:`reflect_borders`).
        """
        left, right, top, bottom = pad or (0, 0, 0, 0)
        whole = classed_empty((*x.shape[:2], *padded(out, (left, right, top, bottom))), x.dtype, x.device,
                              _channels_last(x))
        row = self._row(x, out[1])
        budget = max(1, ROW_CHUNK_BYTES // max(1, 4 * x.shape[0] * x.shape[1] * out[1]))  # widened rows per call
        step = max(1, budget * out[0] // max(out[0], x.shape[2]))  # output rows per call
        for a in range(0, out[0], step):
            b = min(out[0], a + step)
            self._blend(x, sources, range(a, b), whole[:, :, top + a: top + b], left, out[1], row)
        return reflect_borders(whole, pad) if pad is not None else whole

    def _banded(self, x: torch.Tensor, out: tuple[int, int], sources: tuple[list[int], list[int], list[float]],
                pad: tuple[int, int, int, int], conv: tuple) -> torch.Tensor:
        """A strip's :func:`resize_reflect_conv`: the padded map made a band of rows at a time (about
        ``ROW_CHUNK_BYTES``; each row as :meth:`_rows` makes it, so the same values) and each band convolved
        into its rows of the output. Of the padded map only one band exists at a time."""
        weight, bias, stride, dilation, groups = conv
        left, right, top = pad[:3]
        n, c = x.shape[:2]
        hp, wp = padded(out, pad)
        step, spread = (int(v) for v in (_pair(stride)[0], _pair(dilation)[0]))
        reach = spread * (weight.shape[2] - 1) + 1  # padded rows one output row reads
        h_out = (hp - reach) // step + 1
        per_band = max(1, (ROW_CHUNK_BYTES // max(1, n * c * wp * x.element_size()) - reach) // step + 1)
        last = _channels_last(x)
        buffer = classed_empty((n, c, min(hp, (per_band - 1) * step + reach), wp), x.dtype, x.device, last)
        row = self._row(x, out[1])
        y: torch.Tensor | None = None
        for a in range(0, h_out, per_band):
            b = min(h_out, a + per_band)
            first, stop = a * step, (b - 1) * step + reach  # the padded rows [first, stop) this band reads
            band = buffer[:, :, : stop - first]
            self._blend(x, sources, [_reflected(p - top, out[0]) for p in range(first, stop)], band, left, out[1],
                        row)
            reflect_borders(band, (left, right, 0, 0))
            part = F.conv2d(band, weight, bias, stride, 0, dilation, groups)
            if y is None:
                y = torch.empty((n, part.shape[1], h_out, part.shape[3]), dtype=part.dtype, device=x.device,
                                memory_format=torch.channels_last if last else torch.contiguous_format)
            y[:, :, a: b] = part
        assert y is not None
        return y

    @staticmethod
    def _blend(x: torch.Tensor, sources: tuple[list[int], list[int], list[float]], wanted: Any, dst: torch.Tensor,
               left: int, w: int, row: torch.Tensor) -> None:
        """Output rows ``wanted`` of a strip's resize into the rows of ``dst`` (from column ``left``), in order: the
        input rows they read widened to ``w`` px by the kernel in float32, then each row blended from its two
        (:meth:`_sources`) into ``row`` (float32) and stored in ``dst``'s dtype."""
        rows, nexts, weights = sources
        lo, hi = min(rows[i] for i in wanted), max(nexts[i] for i in wanted) + 1
        with torch.autocast(x.device.type, enabled=False):
            wide = F.interpolate(x[:, :, lo: hi].float(), size=(hi - lo, w), mode="bilinear", align_corners=True)
            for j, i in enumerate(wanted):
                torch.lerp(wide[:, :, rows[i] - lo], wide[:, :, nexts[i] - lo], weights[i], out=row)
                dst[:, :, j, left: left + w] = row

    @staticmethod
    def _row(x: torch.Tensor, w: int) -> torch.Tensor:
        """One float32 output row of ``w`` px, laid out as the rows of a map like ``x``."""
        n, c = x.shape[:2]
        return torch.empty(n, w, c, device=x.device).permute(0, 2, 1) if _channels_last(x) else torch.empty(
            n, c, w, device=x.device)

    def _whole(self, axis: int, n: int, big: int | None) -> tuple[float, int]:
        """(offset, whole size) of a tile map of ``n`` px along ``axis``, in that map's pixels."""
        tile, whole, offset = self.tile[axis], self.whole[axis], self.offset[axis]
        f = map_factor(tile, n)
        start = offset / f
        if big is None:
            big = round(start) + n if offset + tile >= whole else round(whole / f)
        return start, big

    @staticmethod
    def _affine(n_in: int, n_out: int, off_in: float, big_in: int, off_out: float, big_out: int) -> tuple[float, float]:
        """Scale and shift mapping normalised output to normalised input coordinates along one axis.

        In pixels, output ``i`` of this tile samples input ``(offset_out + i) * step - offset_in``,
        with ``step`` from the sizes of the whole image's maps (``align_corners=True`` semantics).
        """
        step = (big_in - 1) / (big_out - 1) if big_out > 1 else 0.0
        shift = off_out * step - off_in  # input position of output pixel 0
        if n_in < 2:
            return 0.0, 0.0
        # normalised v in [-1, 1] <-> output pixel i = (v + 1) (n_out - 1) / 2; input u <-> 2 pos / (n_in - 1) - 1
        a = step * (n_out - 1) / (n_in - 1)
        return a, (step * (n_out - 1) + 2 * shift) / (n_in - 1) - 1
