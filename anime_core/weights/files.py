"""Reading and writing weight files.

Native format: safetensors whose keys are ``<part>.<parameter>`` (parts such as ``generator``
or ``generator_inverse``) and whose metadata records ``format=anime-core``, the model, the
parts, the generator options and the versions. Foreign ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)`` only; their layout is recognised from the keys by a
registered :class:`~anime_core.specs.WeightsConverter`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from anime_core.errors import WeightsUnavailable
from anime_core.fsutil import atomic_path

if TYPE_CHECKING:
    from anime_core.registry import Registry

NATIVE_FORMAT = "anime-core"
FORMAT_VERSION = "1"
_WRAPPER_KEYS = ("state_dict", "model", "generator", "model_state_dict", "params_ema", "params", "netG", "G")


@dataclass
class LoadedWeights:
    """Weights ready to load: state dicts by part, plus the generator options they need."""

    parts: dict[str, dict[str, torch.Tensor]]
    generator: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    layout: str = "native"
    path: Path | None = None


def save_native(
    path: str | Path,
    parts: Mapping[str, nn.Module | Mapping[str, torch.Tensor]],
    model: str,
    generator: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``parts`` to ``path`` as native safetensors, atomically."""
    from anime_core.registry import _core_version

    flat: dict[str, torch.Tensor] = {}
    for part, obj in parts.items():
        state = obj.state_dict() if isinstance(obj, nn.Module) else obj
        for key, tensor in state.items():
            flat[f"{part}.{key}"] = tensor.detach().to("cpu").contiguous()
    meta = {
        "format": NATIVE_FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model,
        "parts": json.dumps(list(parts)),
        "generator": json.dumps(dict(generator or {})),
        "anime_core_version": _core_version(),
        "torch_version": torch.__version__,
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=meta)
    return path


def read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` or ``.pt/.pth/.ckpt/.bin`` file (safe loading only)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsUnavailable(f"{path} is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe pickles, RuntimeError for junk
        raise WeightsUnavailable(
            f"{path} cannot be loaded safely as a PyTorch checkpoint ({type(exc).__name__}); only plain "
            f"tensor checkpoints are accepted, never arbitrary pickles"
        ) from exc
    return _unwrap(obj, path), {}


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsUnavailable(f"{path} holds no state dict of tensors")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsUnavailable(f"{path} holds no tensors")
    return tensors


def load_weights(path: str | Path, model: str, registry: Registry) -> LoadedWeights:
    """Load native or foreign weights for ``model``, converting foreign layouts."""
    path = Path(path).expanduser()
    state, meta = read_state(path)
    if meta.get("format") == NATIVE_FORMAT:
        owner = meta.get("model")
        if owner != model:
            raise WeightsUnavailable(
                f"{path} holds weights for model '{owner}', not '{model}'; run 'anime run {owner}'"
            )
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for name in json.loads(meta.get("parts", '["generator"]')):
            prefix = f"{name}."
            parts[name] = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        return LoadedWeights(parts, json.loads(meta.get("generator", "{}")), meta, "native", path)
    for conv in registry.converters_of(model):
        if conv.matches_fn()(state):
            native, options = conv.convert_fn()(state)
            return LoadedWeights({"generator": native}, dict(options), meta, conv.name, path)
    return LoadedWeights({"generator": state}, {}, meta, "plain", path)


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence error on mismatch."""
    try:
        result = module.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # same keys, different shapes (another width or variant)
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise WeightsUnavailable(
            f"{what} does not fit the network ({first.rstrip('.')}); check that the file is for this model and variant"
        ) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise WeightsUnavailable(
            f"{what} does not fit the network: {', '.join(detail)} keys; check that the file is for this "
            f"model and variant"
        )
