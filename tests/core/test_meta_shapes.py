"""Shapes without torch's Python meta kernels (``tracing.meta_call``): the plan and the memory estimate of a tiled
sweep compute the shapes of convolutions, arithmetic and concatenation themselves.

torch's meta kernels for them are Python decompositions whose first call imports ``torch._dynamo`` and sympy: the
first tiled image in a process spent 1.0 of its 1.1 s of planning there (AnimeGAN v2 at 2048x1451).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from anime_core.inference.tracing import MetaShapes, meta_call

CONVS = [  # (input, weight, keyword arguments)
    ((1, 3, 37, 50), (8, 3, 7, 7), {}),
    ((2, 8, 37, 50), (16, 8, 3, 3), {"stride": 2, "padding": 1}),
    ((1, 8, 37, 50), (8, 1, 3, 3), {"groups": 8, "padding": (1, 2), "dilation": (2, 1)}),
    ((1, 8, 37, 50), (4, 8, 3, 5), {"padding": "same"}),
    ((1, 8, 37, 50), (4, 8, 3, 3), {"padding": "valid", "stride": (1, 3)}),
]
TRANSPOSED = [
    ((1, 16, 19, 25), (16, 8, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 16, 19, 25), (16, 4, 4, 4), {"stride": 2, "padding": 1, "groups": 2}),
    ((1, 16, 19, 25), (16, 8, 3, 3), {"dilation": 2}),
]


@pytest.mark.parametrize(("x", "w", "kw"), CONVS)
def test_convolution_shapes_are_torchs(x, w, kw):
    want = F.conv2d(torch.zeros(x), torch.zeros(w), **kw).shape
    got = meta_call(F.conv2d, (torch.empty(x, device="meta"), torch.empty(w, device="meta")), kw)
    assert got.is_meta and got.shape == want


@pytest.mark.parametrize(("x", "w", "kw"), TRANSPOSED)
def test_transposed_convolution_shapes_are_torchs(x, w, kw):
    want = F.conv_transpose2d(torch.zeros(x), torch.zeros(w), **kw).shape
    got = meta_call(F.conv_transpose2d, (torch.empty(x, device="meta"), torch.empty(w, device="meta")), kw)
    assert got.shape == want


def test_arithmetic_and_concatenation_shapes_and_dtypes_are_torchs():
    a = torch.zeros(2, 8, 5, 6, dtype=torch.bfloat16)
    b = torch.zeros(1, 8, 1, 6)
    meta = lambda t: t.to("meta")  # noqa: E731
    for func, args in ((torch.add, (a, b)), (torch.Tensor.__mul__, (a, 2.0)), (torch.Tensor.__rsub__, (b, 1)),
                       (torch.div, (b, a)), (torch.cat, ([a, a.float()], 1)), (torch.cat, ([b, b], -1))):
        want = func(*args)
        got = meta_call(func, tuple(meta(v) if isinstance(v, torch.Tensor) else
                                    [meta(t) for t in v] if isinstance(v, list) else v for v in args), {})
        assert (got.shape, got.dtype) == (want.shape, want.dtype), func
    with pytest.raises(RuntimeError):  # shapes that do not broadcast still fail, in torch's words
        meta_call(torch.add, (torch.empty(2, 3, device="meta"), torch.empty(4, 3, device="meta")), {})
    x = torch.empty(1, 4, 8, 8, device="meta")
    with MetaShapes():
        assert (x + x).shape == x.shape and F.relu_(x) is x and x.numel() == 256


def test_the_first_plan_in_a_process_imports_neither_dynamo_nor_sympy():
    """AnimeGAN v2 at 2048x1451 in 1024 px tiles: the plan and the sweep's memory estimate, in a fresh interpreter."""
    code = """
import sys, time
import torch
from anime_core.registry import get_registry
from anime_core.inference.pipeline import TranslatePipeline
from anime_core.inference.tiling import sweep_need
reg = get_registry()
pipe = TranslatePipeline(reg.model("animegan"), {"generator": reg.build("animegan", variant="v2")}, "cpu")
before = {m for m in ("torch._dynamo", "sympy") if m in sys.modules}
plan = pipe._tile_plan(1451, 2048, 1024)
assert sweep_need(pipe, plan) > 0
print(sorted(before), sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[] []", done.stdout
