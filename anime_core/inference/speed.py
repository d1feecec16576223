"""Process-wide speed settings: CPU allocator reuse, cuDNN autotuning. The application's choice, not a library's.

Both change state the whole process shares (glibc's allocator, torch's one ``cudnn.benchmark``
switch), so a library call must not make them behind its host's back: they take effect only
inside :func:`application`, which the ``anime`` command line enters for every command (``anime
run``, ``anime ui``, ``anime train``, ``anime eval``), as nanoGPT sets its torch flags in
``train.py`` and not in ``model.py``. ``anime_core.load(...)(img)`` and ``anime_core.train`` from
another program leave both alone; such a program opts in with ``with speed.application(): ...``.
Outside it, :func:`reuse_cpu_memory` and :func:`cudnn_autotune` do nothing.

**CPU: reuse freed memory within a call** (:func:`reuse_cpu_memory`). A generator at 512 px
allocates gigabytes of short-lived activations per forward (AnimeGAN v2: a 67 MB map per norm,
pad and activation). glibc serves every allocation above its mmap threshold (at most 32 MiB) with
a fresh ``mmap``, so each one is page-faulted and zeroed by the kernel, then unmapped when freed:
on the development VM that was 1.3-1.7 s of system time in a 4 s forward. Inside the scope the
threshold is raised so large blocks come from the heap and freed ones are reused by the next
layer; when the outermost scope ends, the thresholds are set back to the values glibc's own
adjustment reaches for large blocks (32 MiB, trim 64 MiB) and ``malloc_trim`` returns the freed
heap to the system, so resident memory after a call is what it was without the scope. Outputs are
bit-identical (only where memory comes from changes). Elsewhere (musl, macOS, Windows) it does nothing.

**CUDA: cuDNN autotuning for repeated sizes** (:func:`cudnn_autotune`). ``cudnn.benchmark`` tries
the convolution algorithms once per input shape and keeps the fastest; worth it when many inputs
share a size (a folder resized to one ``--size``, a video), a loss for a few distinct sizes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
import threading
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: large blocks come from the heap inside the scope (a single tensor above this is still mmapped)
SCOPE_MMAP_THRESHOLD = 1 << 30
#: what glibc's dynamic thresholds settle at for large blocks (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
RESTORE_MMAP_THRESHOLD = 32 << 20
RESTORE_TRIM_THRESHOLD = 2 * RESTORE_MMAP_THRESHOLD

MAX_SHAPES_SEEN = 256

_lock = threading.Lock()
_depth = 0
_application = 0  # depth of application() scopes: the settings below apply only while it is above 0


@contextlib.contextmanager
def application() -> Iterator[None]:
    """Allow the process-wide speed settings while inside (the CLI's commands; reentrant).

    Light (no torch): the CLI's top level enters it for every command.
    """
    global _application
    with _lock:
        _application += 1
    one_heap_for_all_threads()  # before torch's worker threads make arenas of their own (see its docstring)
    try:
        yield
    finally:
        with _lock:
            _application -= 1


def in_application() -> bool:
    """Whether an :func:`application` scope is open (the speed settings may change process state)."""
    return _application > 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the one whose mallopt parameters we know), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl's mallopt is a stub)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@cache
def one_heap_for_all_threads() -> bool:
    """Let threads started from now on allocate from the main heap (glibc ``M_ARENA_MAX=1``); once per process.

    Tiled inference runs each tile in its own thread (one at a time). glibc gives each new thread
    its own arena, whose heaps cannot hold a block over 64 MiB: every large activation of a tile
    was then a fresh ``mmap``, page-faulted and zeroed, and freed memory was kept per thread. With
    one arena the reuse above works for tiles too (768x1024 in 256 px tiles: 13% fewer page
    faults than an untiled forward, 20% fewer than with per-thread arenas, and 15% less peak RSS).
    glibc reads the limit when it creates an arena and reuses the arenas that exist (torch's
    OpenMP workers make some at their first parallel region), so :func:`application` (the CLI)
    sets it when it opens, before anything computes; a library call leaves the host's allocator
    alone (its tiles then pay the page faults).
    """
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, 1))


def reuse_available() -> bool:
    return _glibc() is not None


@contextlib.contextmanager
def reuse_cpu_memory(enabled: bool = True) -> Iterator[None]:
    """Serve large CPU allocations from the heap while inside; reentrant and thread-safe (see the module doc).

    Only inside :func:`application`: elsewhere the host's allocator settings are left alone.
    """
    global _depth
    libc = _glibc() if enabled and in_application() else None
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_THRESHOLD, SCOPE_MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_THRESHOLD, RESTORE_MMAP_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, RESTORE_TRIM_THRESHOLD)
                libc.malloc_trim(0)


@contextlib.contextmanager
def release_large_blocks() -> Iterator[None]:
    """Inside :func:`reuse_cpu_memory`, give large blocks back to the system again while inside (tiled sweeps).

    A sweep's paused tiles hold their maps in the middle of the heap while the running tile
    allocates its own: the freed blocks between them are too small to reuse and, with trimming
    off, stay resident, so the heap grew to the untiled forward's size (AnimeGAN v2, 2048x1451 in
    1024 px tiles: a peak of 4.1 GB against 8.0 GB untiled, 2.3 GB of them never live at once).
    Blocks above glibc's default threshold (32 MiB) are mapped and unmapped on their own here:
    3.0 GB at 1.08x the time of the heap-reusing untiled run (benchmarks/RESULTS.md). Now for tiles that
    run in threads only: stepped tiles keep the heap, trimmed before larger segments (``tiling._Sweep.blocks``).
    """
    libc = _glibc() if in_application() else None
    if libc is None:
        yield
        return
    with _lock:
        libc.mallopt(M_MMAP_THRESHOLD, RESTORE_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, RESTORE_TRIM_THRESHOLD)
        libc.malloc_trim(0)
    try:
        yield
    finally:
        with _lock:
            if _depth > 0:  # back to the enclosing reuse scope's settings
                libc.mallopt(M_MMAP_THRESHOLD, SCOPE_MMAP_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


@contextlib.contextmanager
def own_mappings() -> Iterator[None]:
    """Inside :func:`reuse_cpu_memory`, blocks above 32 MiB allocated while inside get a mapping of their own.

    A tiled sweep makes each map that its tiles hold across a pause here (the convolution output a norm
    waits with): maps that outlive the running tile then sit outside the heap, instead of between the
    blocks each tile frees for the next one to reuse. Their pages are given back when they are freed.
    """
    libc = _glibc() if in_application() else None
    if libc is None or _depth == 0:
        yield
        return
    with _lock:
        libc.mallopt(M_MMAP_THRESHOLD, RESTORE_MMAP_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            if _depth > 0:
                libc.mallopt(M_MMAP_THRESHOLD, SCOPE_MMAP_THRESHOLD)


def trim_heap() -> None:
    """Inside :func:`application`, give the free pages in the heap back to the system now (glibc's ``malloc_trim``).

    A tiled sweep calls it before a segment whose maps are larger than any before (a decoder's
    up-sampled ones): the holes the smaller maps left between the paused tiles' maps cannot hold
    them, yet stayed resident (AnimeGAN v2, bf16, 2048x1451 in 1024 px tiles: 0.47 GB of free heap
    at the peak, which went from 2.0 to 1.7 GB, in the same time). A library call leaves the heap alone.
    """
    libc = _glibc() if in_application() else None
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Inside :func:`application`, Python's cyclic garbage collector off while inside (a tiled sweep), then back on.

    A sweep makes tens of thousands of short-lived Python objects (tensors, views, tuples), and each
    few hundred start a collection that walks every tracked object: 0.2 s of a 7-8 s bf16 sweep at
    2048 px (``perf``: ``gc_collect_main``; A/B in one process: 7.89 s against 8.12 s). Nothing is
    lost: the cycles are collected when it is back on. A library call leaves it alone (process-wide).
    """
    if not in_application() or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def one_torch_thread(enabled: bool = True) -> Iterator[None]:
    """torch's own operations in the calling thread only, while inside (graph backends' calls, a tile sweep's sums).

    When OpenVINO or ONNX Runtime runs the network, torch only converts, pads, maps values and
    checks the output: operations of a few hundred microseconds that torch still splits over its
    OpenMP threads. Those threads sleep while the graph runtime's own threads work, and waking
    them costs each small operation a scheduler round trip: on a loaded 2-core machine, up to
    30 ms for converting a 256 px output to a PIL image, 10% of the call (benchmarks/RESULTS.md).
    The count is the calling thread's own (OpenMP's), restored on leaving; nothing else changes.
    """
    import torch

    threads = torch.get_num_threads() if enabled else 1
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cudnn_autotune(device: torch.device, shape: tuple[int, ...], seen: set[tuple[int, ...]]) -> bool:
    """Turn ``cudnn.benchmark`` on once a CUDA input shape repeats (``seen``: the shapes so far); True if it did.

    A shape seen twice is likely to come again (a batch of one size, video frames), so the one-off
    search pays; a single image of each size never triggers it. It stays on for the process
    (torch has one switch), which costs one search per later new shape: so only inside
    :func:`application`, never for a library call.
    """
    if device.type != "cuda" or not in_application():
        return False
    import torch  # this module is light (the CLI imports it at start); a CUDA device means torch is loaded

    if shape in seen and not torch.backends.cudnn.benchmark:
        torch.backends.cudnn.benchmark = True
        return True
    if len(seen) < MAX_SHAPES_SEEN:  # a folder of a million distinct sizes must not grow it without bound
        seen.add(shape)
    return False

