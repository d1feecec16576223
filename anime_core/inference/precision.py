"""``--precision auto``: the fastest precision the device runs natively, if it is faithful to fp32 for this model.

**The candidate.** bf16 where the device computes it natively (CPUs with AVX512-BF16 or AMX, CUDA
GPUs from Ampere on, MPS; :func:`precision_accelerated`), else fp32.
A generator that runs outside torch (the OpenVINO backend) names its own native precision
(``native_precision()``: what OpenVINO's CPU plugin picks by default).

**The parity check.** The candidate is kept only if the pipeline's output in it is within a mean of
:data:`MAX_MEAN` (1/255) and a 99.9th percentile of :data:`MAX_P999` (6/255) of its fp32 output on
a real photo (``anime_core/data/parity.jpg``: a Pexels street photo, 256x187, shipped with the
package) for image models, or on seeded latents for generate models. A candidate that fails, or
raises, leaves the pipeline in fp32. Low precision can break a particular set of weights (a norm
whose variance underflows, an activation that saturates), so the check is per weights file, not
per architecture.

**The verdict is cached** under ``$ANIME_HOME/precision`` like ONNX exports, one small JSON file per
key: the digest of the generator's tensors, classes and options (the export cache's digest), the
model, the pipeline's options, the backend, the device kind and the precision. It is written
atomically (a temporary file renamed into place); two processes that check the same key at once
both write the same verdict, so the last rename winning needs no lock. An unreadable or corrupt
verdict is checked again.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from anime_core.inference.casting import fp32_weights

if TYPE_CHECKING:
    from torch import nn

    from anime_core.inference.pipeline import Pipeline

AUTO = "auto"
MAX_MEAN = 1 / 255  # mean |candidate - fp32| over the [0, 1] image
MAX_P999 = 6 / 255  # 99.9th percentile of the same
PARITY_LATENTS = 4  # generate models: images drawn from seed 0
VERDICT_VERSION = "1"
PARITY_MAX_PIXELS = 1 << 16  # the shipped photo is 256x187


@dataclass
class Verdict:
    """The parity check of one precision for one set of weights on one kind of device."""

    precision: str
    ok: bool
    mean: float  # in 8-bit levels (x 255)
    p999: float
    seconds: float
    detail: str = ""  # why it failed, when it raised

    def summary(self) -> str:
        if self.detail:
            return self.detail
        return f"mean {self.mean:.2f}/255, 99.9th percentile {self.p999:.1f}/255 from fp32"


def parity_photo() -> torch.Tensor:
    """The shipped real photo as (3, H, W) uint8 (read under its own pixel limit, not the run's --max-pixels)."""
    from anime_core.inference import io

    with resources.as_file(resources.files("anime_core") / "data" / "parity.jpg") as path:
        return io.to_tensor(io.decode(Path(path), max_pixels=PARITY_MAX_PIXELS))


def compare(reference: torch.Tensor, candidate: torch.Tensor) -> tuple[float, float]:
    """(mean, 99.9th percentile) of |candidate - reference| in 8-bit levels; non-finite counts as 255."""
    diff = (candidate.float() - reference.float()).abs().flatten()
    diff = torch.where(torch.isfinite(diff), diff, torch.ones_like(diff))
    if not diff.numel():
        return 0.0, 0.0
    p999 = float(diff.sort().values[int(0.999 * (diff.numel() - 1))])
    return float(diff.mean()) * 255, p999 * 255


def device_kind(pipe: Pipeline) -> str:
    """The device as far as numerics go: the backend, the device type, the CPU's ISA level or the GPU's name."""
    backend = str(getattr(pipe.generator, "backend", "torch"))
    dev = pipe.device
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "cpu":
        name = f"{platform.machine()}-{torch.backends.cpu.get_cpu_capability()}"
    else:
        name = dev.type
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{backend}-{dev.type}-{name}").lower()[:80]


def module_digest(pipe: Pipeline, prefix: str) -> str:
    """sha256 of ``prefix``, every submodule's class and plain attributes and every tensor's bytes.

    The tensors are read in one canonical order (NCHW, a 0-dim tensor as one element) whatever memory
    format the pipeline chose; the export cache keys its graphs by it too (:mod:`~.backends.onnx_cache`).
    """
    with fp32_weights(pipe):  # the weights file's values, whatever precision the pipeline runs in now
        return _module_digest(pipe.generator, prefix)


def _module_digest(generator: nn.Module, prefix: str) -> str:
    import hashlib

    h = hashlib.sha256(prefix.encode())
    for name, module in generator.named_modules():
        plain = {k: v for k, v in vars(module).items()
                 if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple, list))}
        h.update(f"{name}:{type(module).__module__}.{type(module).__qualname__}:{sorted(plain.items())!r}".encode())
    for key, tensor in sorted(generator.state_dict().items()):
        h.update(key.encode())
        canonical = tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        h.update(canonical.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_digest(pipe: Pipeline) -> str:
    """The generator's own digest (a graph's hash) if it has one, else :func:`module_digest` of the torch one."""
    own = getattr(pipe.generator, "weights_digest", None)
    if own:
        return str(own)
    return module_digest(pipe, f"parity|{type(pipe).weights_part(pipe.options)}|{torch.__version__}")[:20]


def options_text(pipe: Pipeline) -> str:
    """The pipeline's options as one canonical string, for cache keys."""
    return json.dumps({k: repr(v) for k, v in sorted(getattr(pipe, "options", {}).items())}, sort_keys=True)


def cache_path(pipe: Pipeline, precision: str, folder: Path | None = None) -> Path:
    import hashlib

    from anime_core.weights.store import anime_home

    key = f"{VERDICT_VERSION}|{weights_digest(pipe)}|{pipe.spec.name}|{type(pipe).__qualname__}|{options_text(pipe)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return (folder or anime_home() / "precision") / f"{pipe.spec.name}-{digest}-{device_kind(pipe)}-{precision}.json"


def read_verdict(path: Path, precision: str) -> Verdict | None:
    from anime_core.fsutil import read_cache_json

    try:
        data = read_cache_json(path)
        verdict = Verdict(**{k: data[k] for k in ("precision", "ok", "mean", "p999", "seconds")},
                          detail=str(data.get("detail", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if verdict.precision != precision or not isinstance(verdict.ok, bool):
        return None
    return verdict


def write_verdict(path: Path, verdict: Verdict) -> None:
    from anime_core.fsutil import write_cache_json

    write_cache_json(path, asdict(verdict))  # a read-only home checks again next time


def check(pipe: Pipeline, precision: str) -> Verdict:
    """Run ``pipe``'s parity sample in fp32 and in ``precision`` and compare (no cache)."""
    start = time.perf_counter()
    try:
        with pipe.running_in("fp32"):
            reference = pipe.parity_sample()
        with pipe.running_in(precision):
            candidate = pipe.parity_sample()
    except (RuntimeError, ValueError, NotImplementedError) as exc:  # a kernel the device lacks in this precision
        line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return Verdict(precision, False, float("nan"), float("nan"), time.perf_counter() - start,
                       f"{precision} failed to run ({line})")
    mean, p999 = compare(reference, candidate)
    ok = mean <= MAX_MEAN * 255 and p999 <= MAX_P999 * 255
    return Verdict(precision, ok, mean, p999, time.perf_counter() - start)


def verdict(pipe: Pipeline, precision: str, folder: Path | None = None) -> Verdict:
    """The cached verdict for ``precision`` on ``pipe``'s weights and device, checked and stored when missing."""
    path = cache_path(pipe, precision, folder)
    found = read_verdict(path, precision)
    if found is not None:
        return found
    result = check(pipe, precision)
    write_verdict(path, result)
    return result


def candidate(pipe: Pipeline) -> str:
    """The fastest precision ``pipe``'s device runs natively: bf16 where native, else fp32."""

    native = getattr(pipe.generator, "native_precision", None)
    if callable(native):
        return str(native())
    return "bf16" if precision_accelerated(pipe.device, "bf16") else "fp32"


def choose(pipe: Pipeline) -> tuple[str, str]:
    """(the precision ``auto`` runs in, one line saying which and why)."""
    want = candidate(pipe)
    if want == "fp32":
        return "fp32", f"precision fp32 (auto: this {pipe.device.type} has no native bf16)"
    result = verdict(pipe, want)
    if result.ok:
        return want, f"precision {want} (auto: native on this {pipe.device.type}; {result.summary()})"
    return "fp32", (f"precision fp32 (auto: {want} is native on this {pipe.device.type} but too far from fp32 for "
                    f"these weights: {result.summary()}; limits mean {MAX_MEAN * 255:.0f}/255, 99.9th percentile "
                    f"{MAX_P999 * 255:.0f}/255)")

def precision_accelerated(device: torch.device, precision: str) -> bool:
    """Whether ``device`` computes ``precision`` natively rather than emulating it.

    fp16/bf16 on a CPU without the instructions (AVX512-FP16, AVX512-BF16, AMX) go through slow
    reference kernels: AnimeGAN v2 at 256 px took 246 s in fp16 and 301 s in bf16 against 4 s in
    fp32 on a 2-core Xeon limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``); with the instructions they
    ran at about fp32's speed. CUDA runs fp16 on every GPU torch supports and bf16 from Ampere on.
    """
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        check = "_is_mkldnn_fp16_supported" if precision == "fp16" else "_is_mkldnn_bf16_supported"
        try:  # private torch API (no public one says this); if it ever goes, assume emulation
            return bool(getattr(torch.ops.mkldnn, check)())
        except (AttributeError, RuntimeError):
            return False
    return True  # mps and others: fp16/bf16 are their native formats
