"""Speed decisions of the pipelines: CPU memory reuse, channels-last by device and net, cuDNN autotuning.

The CUDA-only decisions are tested with the device check faked (no GPU is needed or used). The two
process-wide settings (glibc's allocator, ``cudnn.benchmark``) are the application's: the CLI gets
them, a library call does not (issue 22).
"""

from __future__ import annotations

import copy
import runpy
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers import make_image
from torch import nn

import anime_core
from anime_core.cli import main
from anime_core.inference import io, speed
from anime_core.inference.pipeline import TranslatePipeline, use_channels_last

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_speed.py"


class NormNet(nn.Module):
    """Conv, depthwise conv, GroupNorm or InstanceNorm, LeakyReLU: the layer kinds the decisions are about."""

    stride = 1

    def __init__(self, norm: str = "group") -> None:
        super().__init__()
        layer = nn.GroupNorm(1, 8) if norm == "group" else nn.InstanceNorm2d(8, affine=True)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8), layer,
                                  nn.LeakyReLU(0.2), nn.Conv2d(8, 3, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FakeLibc:
    """Records mallopt/malloc_trim calls instead of changing the process's allocator."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("trim", pad))
        return 1


@pytest.fixture
def fake_libc(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(speed, "_glibc", lambda: libc)
    return libc


@pytest.fixture
def app():
    """Inside the application scope the CLI opens: the process-wide settings are allowed."""
    with speed.application():
        yield
    assert not speed.in_application()


def _pipe(cls: type[TranslatePipeline], tiny_registry, net: nn.Module) -> TranslatePipeline:
    return cls(tiny_registry.model("tiny"), {"generator": copy.deepcopy(net)}, "cpu")


def test_memory_reuse_is_scoped_reentrant_and_restored(fake_libc, app):
    fake_libc.calls.clear()  # the application scope's one-heap setting, when this test runs first
    with speed.reuse_cpu_memory():
        assert fake_libc.calls == [("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD),
                                   ("mallopt", speed.M_TRIM_THRESHOLD, 2**31 - 1)]
        with speed.reuse_cpu_memory():  # a tiled translate calls forward inside translate
            pass
        assert len(fake_libc.calls) == 2, "an inner scope must not restore the thresholds"
    assert fake_libc.calls[2:] == [("mallopt", speed.M_MMAP_THRESHOLD, speed.RESTORE_MMAP_THRESHOLD),
                                   ("mallopt", speed.M_TRIM_THRESHOLD, speed.RESTORE_TRIM_THRESHOLD),
                                   ("trim", 0)]
    with pytest.raises(ValueError), speed.reuse_cpu_memory():
        raise ValueError("a failing forward still restores")
    assert fake_libc.calls[-1] == ("trim", 0) and speed._depth == 0
    fake_libc.calls.clear()
    with speed.reuse_cpu_memory(enabled=False):
        pass
    assert fake_libc.calls == []


def test_own_mappings_maps_a_block_the_heap_cannot_hold_and_restores_the_scope(app):
    """Inside the reuse scope a 64 MiB block comes from the heap; inside ``own_mappings`` one that the heap has no
    free chunk for gets a mapping of its own (glibc's ``mallinfo2``: mapped bytes), and the scope's threshold is back
    afterwards. Outside the reuse scope it changes nothing."""
    import ctypes

    libc = speed._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc 2.33+: no mallinfo2 to look at")

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = Info
    size = 64 << 20
    with speed.reuse_cpu_memory():
        before = libc.mallinfo2().hblkd
        in_heap = torch.empty(size, dtype=torch.uint8)
        assert libc.mallinfo2().hblkd - before < size
        with speed.own_mappings():
            mapped = torch.empty(size + (1 << 20), dtype=torch.uint8)  # larger than any free chunk: none fits
        assert libc.mallinfo2().hblkd - before >= size
        again = torch.empty(size + (2 << 20), dtype=torch.uint8)
        assert libc.mallinfo2().hblkd - before < 2 * size  # the scope's threshold is back: from the heap
        del in_heap, mapped, again


def test_own_mappings_sets_glibcs_threshold_inside_the_reuse_scope_only(fake_libc, app):
    fake_libc.calls.clear()
    with speed.own_mappings():
        pass
    assert fake_libc.calls == []
    with speed.reuse_cpu_memory():
        fake_libc.calls.clear()
        with speed.own_mappings():
            assert fake_libc.calls == [("mallopt", speed.M_MMAP_THRESHOLD, speed.RESTORE_MMAP_THRESHOLD)]
        assert fake_libc.calls[-1] == ("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD)


def test_a_tiled_sweep_pauses_the_garbage_collector_in_the_application_only(registry):
    """The cyclic collector is off while a sweep runs inside the application scope (the CLI), back on after; a
    library call leaves it on."""
    import gc

    pipe = TranslatePipeline(registry.model("animegan"), {"generator": registry.build("animegan", variant="v2")}, "cpu")
    image = io.to_tensor(make_image((160, 128), 3))
    seen: list[bool] = []
    progress = lambda done, total: seen.append(gc.isenabled())  # noqa: E731 - called between tiles
    pipe.translate(image, 64, progress=progress)
    assert seen and all(seen) and gc.isenabled()
    seen.clear()
    with speed.application():
        pipe.translate(image, 64, progress=progress)
        assert gc.isenabled()
    assert seen and not any(seen) and gc.isenabled()


def test_real_glibc_scope_gives_identical_outputs(tiny_registry, app):
    if not speed.reuse_available():
        pytest.skip("not glibc: the scope does nothing here")
    torch.manual_seed(0)
    net = NormNet()
    image = torch.randint(0, 256, (3, 40, 52), dtype=torch.uint8)
    plain = type("Plain", (TranslatePipeline,), {"reuse_cpu_memory": False, "channels_last_policy": False})
    reuse_nchw = type("ReuseNCHW", (TranslatePipeline,), {"channels_last_policy": False})
    want = _pipe(plain, tiny_registry, net).translate(image)
    assert torch.equal(_pipe(reuse_nchw, tiny_registry, net).translate(image), want)  # only where memory comes from
    fast = _pipe(TranslatePipeline, tiny_registry, net)
    assert fast.channels_last and (fast.translate(image) - want).abs().max() < 1e-5


def test_pipeline_calls_run_inside_the_scope_on_cpu_only(tiny_registry, fake_libc, app):
    pipe = _pipe(TranslatePipeline, tiny_registry, NormNet())
    pipe.translate(torch.zeros(3, 16, 16, dtype=torch.uint8))
    assert [c[0] for c in fake_libc.calls].count("trim") == 1  # one outermost scope per call
    fake_libc.calls.clear()
    pipe.reuse_cpu_memory = False
    pipe.translate(torch.zeros(3, 16, 16, dtype=torch.uint8))
    assert fake_libc.calls == []


class GraphNet(NormNet):
    """Stands for a graph backend's generator (``backend`` other than torch); records torch's thread count."""

    backend = "openvino"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.threads = torch.get_num_threads()
        return super().forward(x)


def test_graph_backends_run_the_steps_around_the_model_in_one_torch_thread(tiny_registry, fake_libc, app,
                                                                            monkeypatch):
    """OpenVINO/ONNX Runtime own the cores during the call: torch's small steps stay in the calling thread,
    the thread count comes back after it, and no heap tuning is made for torch activations that do not exist."""
    from anime_core.inference import inputs

    seen: list[int] = []
    finite = inputs.check_finite
    monkeypatch.setattr(inputs, "check_finite", lambda y, what: (seen.append(torch.get_num_threads()), finite(y, what)))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        graph = _pipe(TranslatePipeline, tiny_registry, GraphNet())
        assert graph.on_graph
        out = graph(torch.zeros(3, 16, 16, dtype=torch.uint8))
        assert out.shape == (3, 16, 16) and graph.generator.threads == 1 and seen == [1]
        assert torch.get_num_threads() == 2 and fake_libc.calls == []
        plain = _pipe(TranslatePipeline, tiny_registry, NormNet())
        plain(torch.zeros(3, 16, 16, dtype=torch.uint8))
        assert seen == [1, 2] and [c[0] for c in fake_libc.calls].count("trim") >= 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_channels_last_unless_instance_norm(device):
    dev = torch.device(device)
    assert use_channels_last(dev, [NormNet("group")])
    assert not use_channels_last(dev, [NormNet("instance")])  # CPU: 3x slower and NCHW out (measured)
    assert not use_channels_last(dev, [NormNet("group"), NormNet("instance")])
    assert use_channels_last(dev, [NormNet("instance")], policy=True)
    assert not use_channels_last(dev, [NormNet("group")], policy=False)
    assert not use_channels_last(torch.device("mps"), [NormNet("group")])


def test_pipeline_converts_weights_to_channels_last(tiny_registry):
    pipe = _pipe(TranslatePipeline, tiny_registry, NormNet())
    conv = pipe.generator.body[0]
    assert pipe.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    instance = _pipe(TranslatePipeline, tiny_registry, NormNet("instance"))
    assert not instance.channels_last and instance.generator.body[0].weight.is_contiguous()


def test_cudnn_autotune_once_a_cuda_shape_repeats(monkeypatch, app):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    seen: set[tuple[int, ...]] = set()
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not speed.cudnn_autotune(cuda, (1, 3, 64, 64), seen)
    assert not speed.cudnn_autotune(cuda, (1, 3, 64, 96), seen) and not torch.backends.cudnn.benchmark
    assert speed.cudnn_autotune(cuda, (1, 3, 64, 64), seen) and torch.backends.cudnn.benchmark
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    other: set[tuple[int, ...]] = set()
    for _ in range(3):
        assert not speed.cudnn_autotune(cpu, (1, 3, 64, 64), other)
    assert not torch.backends.cudnn.benchmark and not other
    many: set[tuple[int, ...]] = set()
    for side in range(speed.MAX_SHAPES_SEEN + 50):
        speed.cudnn_autotune(cuda, (1, 3, side, side), many)
    assert len(many) == speed.MAX_SHAPES_SEEN


def test_pipeline_autotunes_repeated_shapes_through_its_device(tiny_registry, monkeypatch):
    calls: list[tuple[str, tuple[int, ...]]] = []
    monkeypatch.setattr(speed, "cudnn_autotune", lambda device, shape, seen: calls.append((device.type, shape)))
    pipe = _pipe(TranslatePipeline, tiny_registry, NormNet())
    pipe.translate(torch.zeros(3, 16, 20, dtype=torch.uint8))
    assert calls == [("cpu", (1, 3, 16, 20))]


def test_bench_gpu_mode_says_plainly_when_there_is_no_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["bench_speed.py", "--device", "cuda"])
    runpy.run_path(str(BENCH), run_name="__main__")
    out = capsys.readouterr().out
    assert "no CUDA GPU" in out and "no GPU figure measured" in out and "|" not in out


def test_a_library_call_from_a_second_thread_changes_no_process_setting(tiny_registry, fake_libc, tmp_path,
                                                                          monkeypatch):
    """``anime_core.load(...)(img)`` in a host's worker thread: no mallopt, no cudnn.benchmark (was: both)."""
    from anime_core.weights.files import save_native

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    weights = save_native(tmp_path / "tiny.safetensors", {"generator": anime_core.build("tiny", "generator")}, "tiny")
    out: dict[str, object] = {}

    def host_thread() -> None:
        pipe = anime_core.load("tiny", weights=weights, device="cpu")
        out["image"] = pipe(make_image((40, 28), seed=3))
        out["image"] = pipe(make_image((40, 28), seed=4))  # the same size twice: what would turn autotuning on
        seen: set[tuple[int, ...]] = set()
        out["tuned"] = [speed.cudnn_autotune(torch.device("cuda"), (1, 3, 28, 40), seen) for _ in range(2)]

    worker = threading.Thread(target=host_thread)
    worker.start()
    worker.join()
    assert out["image"].size == (40, 28) and out["tuned"] == [False, False]
    assert fake_libc.calls == [] and speed._depth == 0
    assert torch.backends.cudnn.benchmark is False and not speed.in_application()


def test_the_cli_gets_the_tuning_and_leaves_the_scope_after(tiny_registry, fake_libc, tmp_path):
    from anime_core.weights.files import save_native

    weights = save_native(tmp_path / "tiny.safetensors", {"generator": anime_core.build("tiny", "generator")}, "tiny")
    make_image((40, 28), seed=3).save(tmp_path / "a.png")
    inside: list[bool] = []
    real = speed.reuse_cpu_memory

    def spy(enabled: bool = True):
        inside.append(speed.in_application())
        return real(enabled)

    speed.reuse_cpu_memory = spy
    try:
        with pytest.raises(SystemExit) as done:
            main(["run", "tiny", "--weights", str(weights), "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")])
    finally:
        speed.reuse_cpu_memory = real
    assert done.value.code == 0 and (tmp_path / "o").exists()
    assert inside and all(inside)
    assert ("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD) in fake_libc.calls
    assert fake_libc.calls[-1] == ("trim", 0) and not speed.in_application()


def test_a_sweep_trims_the_heap_before_segments_larger_than_any_before(registry, fake_libc, monkeypatch):
    """The holes a sweep's smaller maps leave among the paused tiles' maps cannot hold a decoder's up-sampled maps,
    yet stay resident through the peak: the heap is trimmed after the global calls that a segment holding a
    quarter more than any before, or making a map a quarter larger than any before, follows (measured on the
    trace, shapes only); inside the application only."""
    from anime_core.inference import tiling

    pipe = TranslatePipeline(registry.model("animegan"), {"generator": registry.build("animegan", variant="v2")}, "cpu")
    image = io.to_tensor(make_image((384, 320), 3))
    plan = pipe._tile_plan(320, 384, 128)
    net = tiling.lean(pipe.generator, tiling._calls(plan))
    live = tiling.live_bytes(net, plan)
    calls = [str(n.target) for n in net.graph.nodes
             if n.op == "call_module" and tiling._global(net.get_submodule(str(n.target)))]
    assert len(live.stages) == len(live.largest) == len(calls) + 1
    points = sorted(tiling.trim_points(net, plan))
    # block_e's first segment makes maps larger than any before (its convolution's output at full size, 64 channels),
    # and block_e holds the most of all
    first = calls.index("block_d.1.2") + 1
    assert live.largest[first] > tiling.TRIM_GROWTH * max(live.largest[:first]) and first - 1 in points
    assert live.stages.index(max(live.stages)) >= first
    assert 1 <= len(points) <= len(calls) // 4
    settle = tiling._Sweep._settle

    def settled(self, key):
        settle(self, key)
        fake_libc.calls.append(("settled", key[0]))

    monkeypatch.setattr(tiling._Sweep, "_settle", settled)
    want = pipe.translate(image, 0)
    pipe.translate(image, 128)  # a library call: the heap is the host's
    assert ("trim", 0) not in fake_libc.calls
    with speed.application():
        got = pipe.translate(image, 128)
    log = fake_libc.calls
    trimmed = [log[i - 1][1] for i, call in enumerate(log) if call == ("trim", 0) and log[i - 1][0] == "settled"]
    assert trimmed == [calls[i] for i in points]
    assert (got - want).abs().mean() < 1e-5
    # stepped tiles keep the call's heap (the running tile reuses the blocks the one before it freed), except for
    # the maps they pause with: each convolution whose output a norm takes runs with glibc's threshold (a mapping of
    # its own where the heap has no hole for it), then the call's again; tiles in threads map their large blocks
    mapped = ("mallopt", speed.M_MMAP_THRESHOLD, speed.RESTORE_MMAP_THRESHOLD)
    scoped = ("mallopt", speed.M_MMAP_THRESHOLD, speed.SCOPE_MMAP_THRESHOLD)
    held = [n for n in net.graph.nodes if n.target is tiling.donate]
    tiles = len(tiling.layout(plan))
    assert len(held) == len(calls)  # every norm of AnimeGAN v2 takes a convolution's output
    assert log.count(mapped) == tiles * len(held) + 1 and log[-3] == mapped and log[-1] == ("trim", 0)
    assert all(log[i + 1] == scoped for i, call in enumerate(log[:-3]) if call == mapped)
    log.clear()
    with speed.application(), speed.reuse_cpu_memory():
        tiling.run_faithful(pipe, image, 128, plan, net=pipe.generator)  # an eager net: tiles in threads
    assert log.count(mapped) == 2
