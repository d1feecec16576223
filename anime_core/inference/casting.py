"""Low precision on the CPU: the nets' weights cast in place, their fp32 values kept to go back exactly.

``torch.autocast`` on the CPU runs convolutions in bf16 but keeps a list of operations in fp32
(reflection and replication padding, bilinear upsampling among them): each of those casts its
bf16 input to a new fp32 map and the next convolution casts it back. In AnimeGAN v2 at
2048x1451 px (AMX CPU, 2 threads) that cost 6.5 s against 2.9 s with the weights and the input
in bf16 (fp32: 12.4 s); the difference from fp32 is the same (mean 0.33/255, 99.9th percentile
2/255): the convolutions' products are bf16 either way, and torch's norm kernels accumulate
bf16 maps in fp32 (benchmarks/RESULTS.md). So on the CPU a pipeline in bf16 (or fp16) casts its
nets, and :meth:`CastNets.to_compute` casts what goes in; GPUs keep autocast (not measured here).

The fp32 tensors are kept, so switching back (``Pipeline.running_in("fp32")``, the parity check
of ``--precision auto``, an export) restores the very same values, and the low-precision copies
are kept per dtype, so switching again costs nothing. A forward pre-hook on each net casts
floating-point inputs, so ``net(x)`` takes an fp32 ``x`` as it did under autocast; a pipeline that
calls another method of its generator (``encode``) casts with :meth:`CastNets.to_compute`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class CastNets:
    """The floating-point parameters and buffers of ``nets`` in :attr:`dtype` (float32 to start with).

    Use :meth:`of`: pipelines built on the same nets share one, so none takes another's cast tensors
    for fp32 values.
    """

    @classmethod
    def of(cls, nets: Iterable[nn.Module]) -> CastNets:
        """The one that holds these nets (made on first use; one holding more of them does too)."""
        nets = list(nets)
        found = _OWNERS.get(nets[0]) if nets else None
        if found is not None and all(any(net is held for held in found.nets) for net in nets):
            return found
        if any(net in _OWNERS for net in nets):
            raise ValueError("these nets are already cast as part of another set; build the pipeline on copies")
        made = cls(nets)
        for net in nets:
            _OWNERS[net] = made
        return made

    def __init__(self, nets: Iterable[nn.Module]) -> None:
        self.nets = list(nets)
        self.dtype = torch.float32
        self._tensors = [t for net in self.nets for t in _floating(net)]
        self._masters = [t.data for t in self._tensors]
        self._copies: dict[torch.dtype, list[torch.Tensor]] = {torch.float32: self._masters}
        self._hooks: list[RemovableHandle] = []
        self._lock = threading.Lock()

    def set(self, dtype: torch.dtype) -> None:
        """Put the nets' tensors in ``dtype`` (a copy of the fp32 values, made once per dtype)."""
        with self._lock:
            if dtype == self.dtype:
                return
            if dtype not in self._copies:
                with torch.inference_mode(False), torch.no_grad():
                    self._copies[dtype] = [m.to(dtype) for m in self._masters]  # keeps channels-last strides
            for tensor, value in zip(self._tensors, self._copies[dtype], strict=True):
                tensor.data = value
            for hook in self._hooks:
                hook.remove()
            self._hooks = [] if dtype == torch.float32 else [  # a partial, not a bound method: nets stay deep-copyable
                net.register_forward_pre_hook(functools.partial(_cast_inputs, dtype), with_kwargs=True)
                for net in self.nets]
            self.dtype = dtype

    @contextlib.contextmanager
    def fp32(self) -> Iterator[None]:
        """The fp32 weights while inside (a digest, an export), then the dtype before."""
        before = self.dtype
        self.set(torch.float32)
        try:
            yield
        finally:
            self.set(before)

    def to_compute(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the nets' dtype when it is floating point (an input the pre-hook does not see)."""
        return _cast(self.dtype, x)


def _cast(dtype: torch.dtype, x: Any) -> Any:
    return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype else x


def _cast_inputs(dtype: torch.dtype, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tuple(_cast(dtype, a) for a in args), {k: _cast(dtype, v) for k, v in kwargs.items()}


_OWNERS: weakref.WeakKeyDictionary[nn.Module, CastNets] = weakref.WeakKeyDictionary()


def _floating(net: nn.Module) -> list[torch.Tensor]:
    """The net's floating-point parameters and buffers, each once (shared ones included once)."""
    seen: dict[int, torch.Tensor] = {}
    for t in (*net.parameters(), *net.buffers()):
        if t.is_floating_point():
            seen.setdefault(id(t), t)
    return list(seen.values())


def fp32_weights(pipe: Any) -> contextlib.AbstractContextManager[None]:
    """Around what must see the fp32 weights of a pipeline's nets: their digest, an export."""
    cast = getattr(pipe, "cast", None)
    return cast.fp32() if isinstance(cast, CastNets) else contextlib.nullcontext()


def compute_dtype(model: Any) -> torch.dtype:
    """The dtype a pipeline's nets compute in (float32 for one that does not cast them)."""
    cast = getattr(model, "cast", None)
    return cast.dtype if isinstance(cast, CastNets) else torch.float32
