"""Reading and writing weight files.

Native format: safetensors whose keys are ``<part>.<parameter>`` (parts such as ``generator``
or ``generator_inverse``) and whose metadata records ``format=anime-core``, the model, the
parts, the generator options and the versions. Foreign ``.pt``/``.pth`` files are read with
``torch.load(weights_only=True)`` only, TensorFlow 1 checkpoints (either file of the
``NAME.ckpt.index`` / ``NAME.ckpt.data-*`` pair, or the ``NAME.ckpt`` prefix) by the pure-Python
reader in :mod:`anime_core.weights.tf1`; a foreign layout is recognised from the keys (TF
variable names for checkpoints) by a registered :class:`~anime_core.specs.WeightsConverter`.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from anime_core.budget import check_bytes
from anime_core.errors import AnimeError, WeightsUnavailable
from anime_core.fsutil import atomic_path
from anime_core.weights.tf1 import _shown

if TYPE_CHECKING:
    from anime_core.registry import Registry

NATIVE_FORMAT = "anime-core"
TF1_FORMAT = "tf1-checkpoint"  # read_state's metadata "format" for a TensorFlow 1 checkpoint
FORMAT_VERSION = "1"
_WRAPPER_KEYS = ("state_dict", "model", "generator", "model_state_dict", "params_ema", "params", "netG", "G")
#: bounds for generator options read from a file, checked before building anything from them
MAX_OPTION_INT = 1 << 13
MAX_OPTION_ITEMS = 64
MAX_OPTION_STR = 256
#: parts of a native file (a model has a handful) and entries of a PyTorch zip checkpoint (one per tensor, about)
MAX_PARTS = 64
MAX_ZIP_ENTRIES = 1 << 16


@dataclass
class LoadedWeights:
    """Weights ready to load: state dicts by part, plus the generator options they need."""

    parts: dict[str, dict[str, torch.Tensor]]
    generator: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    layout: str = "native"
    path: Path | None = None
    #: for a file no converter took: the closest known layout and what differs (``describe``)
    hint: str | None = None


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
    """Tensors and metadata of a ``.safetensors``, ``.pt/.pth/.ckpt/.bin`` file (safe loading only) or TF1 checkpoint.

    A TF1 checkpoint gives ``{variable name: tensor}`` in TensorFlow's own layout (HWIO kernels)
    and the metadata ``{"format": TF1_FORMAT}``; converters rename and transpose.
    """
    from anime_core.weights import tf1

    path = Path(path).expanduser()
    if tf1.checkpoint_prefix(path) is not None:
        arrays = tf1.read_checkpoint(path)
        return {k: torch.from_numpy(v) for k, v in arrays.items()}, {"format": TF1_FORMAT}
    if not path.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsUnavailable(f"{path} is not a readable safetensors file ({exc})") from exc
    _check_torch_zip(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe pickles, RuntimeError for junk
        raise WeightsUnavailable(
            f"{path} cannot be loaded safely as a PyTorch checkpoint ({type(exc).__name__}); only plain "
            f"tensor checkpoints are accepted, never arbitrary pickles"
        ) from exc
    return _unwrap(obj, path), {}


def _check_torch_zip(path: Path) -> None:
    """Refuse a PyTorch zip checkpoint that would inflate: ``torch.save`` stores every entry uncompressed.

    ``torch.load`` inflates compressed entries, so a few MB of deflated zeros would become GBs.
    With only stored entries, loading needs no more memory than the file's size, checked here
    against the memory budget. Legacy (pre-zip) files are left to ``torch.load``.
    """
    size = path.stat().st_size
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise WeightsUnavailable(f"{path} is not a readable PyTorch checkpoint (damaged zip archive: {exc})") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise WeightsUnavailable(
            f"{path} holds {len(infos):,} archive entries, above the limit of {MAX_ZIP_ENTRIES:,} for a PyTorch "
            f"checkpoint; check that the file is a checkpoint"
        )
    for info in infos:
        stored = info.compress_type == zipfile.ZIP_STORED and info.file_size == info.compress_size
        if not stored or info.header_offset + info.compress_size > size:
            raise WeightsUnavailable(
                f"{path} holds the compressed or oversized entry '{_shown(info.filename)}' "
                f"({info.file_size:,} bytes from {info.compress_size:,}), which torch.save never writes; "
                f"it is not a plain PyTorch checkpoint, so it was not loaded"
            )
    check_bytes(sum(i.file_size for i in infos), f"loading the PyTorch checkpoint {path}", error=WeightsUnavailable)


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
    from anime_core.weights import tf1

    path = Path(path).expanduser()
    if tf1.checkpoint_prefix(path) is not None:
        return _load_tf1(path, model, registry)
    if path.suffix == ".safetensors":
        _check_native_parts(path)
    state, meta = read_state(path)
    if meta.get("format") == NATIVE_FORMAT:
        owner = meta.get("model")
        if owner != model:
            raise WeightsUnavailable(
                f"{path} holds weights for model '{_shown(str(owner), 60)}', not '{model}'; "
                f"run 'anime run {_shown(str(owner), 60)}'"
            )
        names = _meta_json(meta, "parts", ["generator"], list, path)
        parts = _split_parts(state, names, path)
        return LoadedWeights(parts, _meta_json(meta, "generator", {}, dict, path), meta, "native", path)
    for conv in registry.converters_of(model):
        if conv.matches_fn()(state):
            native, options = conv.convert_fn()(state)
            return LoadedWeights({"generator": native}, dict(options), meta, conv.name, path)
    return LoadedWeights({"generator": state}, {}, meta, "plain", path, closest_layout(state, registry))


def _check_native_parts(path: Path) -> None:
    """Refuse a native file's 'parts' list from its header alone, before any of its tensors is read."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return  # read_state says what is wrong with the file
    if meta.get("format") == NATIVE_FORMAT:
        _check_part_names(_meta_json(meta, "parts", ["generator"], list, path), path)


def _check_part_names(names: list[Any], path: Path) -> None:
    if not names or not all(isinstance(n, str) and n for n in names):
        raise _corrupt(path, "'parts' should be a non-empty list of part names")
    if len(names) > MAX_PARTS:
        raise _corrupt(path, f"'parts' lists {len(names):,} parts, above the limit of {MAX_PARTS}")


def _split_parts(state: Mapping[str, torch.Tensor], names: list[Any], path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{part: {parameter: tensor}}`` from native ``<part>.<parameter>`` keys, in time linear in keys and parts."""
    _check_part_names(names, path)
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    dotted = [name for name in parts if "." in name]  # rare: matched by prefix, at most MAX_PARTS of them
    for key, value in state.items():
        head, sep, rest = key.partition(".")
        if sep and head in parts:
            parts[head][rest] = value
        for name in dotted:
            if key.startswith(name + "."):
                parts[name][key[len(name) + 1 :]] = value
    return parts


def shown_names(names: Collection[str], limit: int = 4) -> str:
    """Names read from a file for a message: escaped, the first ``limit``, then "... and N more"."""
    listed = ", ".join(f"'{_shown(str(n), 60)}'" for n in list(names)[:limit])
    return listed + (f" ... and {len(names) - limit:,} more" if len(names) > limit else "")


class _Recorder(Mapping[str, torch.Tensor]):
    """A read-only view of a state that records the keys whose values were taken."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self._state = state
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        value = self._state[key]
        self.used.add(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


def _meta_tensors(ckpt: Any) -> dict[str, torch.Tensor]:
    """``{variable: tensor on the meta device}``: the checkpoint's names, shapes and dtypes, with no storage."""
    out = {}
    for name, e in ckpt.entries.items():
        dtype = _TF_TORCH.get(e.dtype, torch.float32)  # an unsupported dtype is refused if it is ever read
        out[name] = torch.empty(e.shape, dtype=dtype, device="meta")
    return out


#: TensorFlow dtype -> the torch dtype :func:`read_state` gives (bfloat16 is widened to float32)
_TF_TORCH = {1: torch.float32, 2: torch.float64, 3: torch.int32, 4: torch.uint8, 5: torch.int16, 6: torch.int8,
             9: torch.int64, 10: torch.bool, 14: torch.float32, 17: torch.uint16, 19: torch.float16,
             22: torch.uint32, 23: torch.uint64}


def _load_tf1(path: Path, model: str, registry: Registry) -> LoadedWeights:
    """A TF1 checkpoint: the layout is recognised from the index alone, then only the variables it maps are read.

    Converters run first on meta tensors (names, shapes, dtypes; no memory), which tells which
    variables the matching one takes; those are read, once each, after their total is checked
    against the memory budget. Optimiser slots and other unused variables are never read.
    """
    from anime_core.weights import tf1

    ckpt = tf1.open_checkpoint(path)
    shapes = _meta_tensors(ckpt)
    for conv in registry.converters_of(model):
        if not conv.matches_fn()(shapes):
            continue
        recorder = _Recorder(shapes)
        try:
            conv.convert_fn()(recorder)
            needed: Collection[str] = recorder.used
        except Exception:  # a converter that computes with values cannot run on meta tensors: read all it may take
            needed = list(shapes)
        state = {k: torch.from_numpy(v) for k, v in ckpt.read(needed).items()}
        native, options = conv.convert_fn()(state)
        return LoadedWeights({"generator": native}, dict(options), {"format": TF1_FORMAT}, conv.name, path)
    layouts = ", ".join(c.name for c in registry.converters_of(model)) or "none"  # TF names never fit a native net
    raise WeightsUnavailable(
        f"{path} is a TensorFlow checkpoint whose variables ({shown_names(sorted(shapes), 2)}) match no checkpoint "
        f"layout of model '{model}' (known layouts: {layouts}); check that it is a checkpoint of this model's network"
    )


def closest_layout(state: Mapping[str, torch.Tensor], registry: Registry) -> str | None:
    """The first clause a registered converter's ``describe`` gives for ``state`` (any model's), else ``None``."""
    seen: set[object] = set()
    for conv in registry.converters.values():
        if conv.describe is None or conv.describe in seen:
            continue
        seen.add(conv.describe)
        try:
            clause = conv.describe_fn()(state)  # type: ignore[misc]
        except Exception:  # a describer that cannot read this file simply has nothing to say
            continue
        if clause:
            return _shown(clause, 400)  # it may quote a name from the file
    return None


def _corrupt(path: Path, detail: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"{path} has corrupt metadata ({detail}); export the weights again or use an intact copy of the file"
    )


def _meta_json(meta: Mapping[str, str], key: str, default: Any, kind: type, path: Path) -> Any:
    """The JSON value of metadata ``key`` (a ``kind``), or ``default`` when absent; damaged values are one sentence."""
    if key not in meta:
        return default
    try:
        value = json.loads(meta[key])
    except (json.JSONDecodeError, TypeError, RecursionError):
        raise _corrupt(path, f"'{key}' is not valid JSON") from None
    if not isinstance(value, kind):
        expected = "a JSON object" if kind is dict else "a JSON list"
        raise _corrupt(path, f"'{key}' should be {expected}, not {type(value).__name__}")
    return value


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
            detail.append(f"{len(unexpected)} unexpected (e.g. {_shown(unexpected[0])})")
        raise WeightsUnavailable(
            f"{what} does not fit the network: {', '.join(detail)} keys; check that the file is for this "
            f"model and variant"
        )


# -- options read from a file: checked before anything is allocated ----------------------------


def _fmt(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{_shown(str(k), 60)}={_short(v)}" for k, v in sorted(options.items())) or "none"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_value(name: str, value: Any, what: str, depth: int = 0) -> None:
    def bad(why: str) -> WeightsUnavailable:
        return WeightsUnavailable(
            f"{what}: generator option {_shown(name, 80)}={_short(value)} {why}; the file's metadata is wrong or "
            f"damaged, so nothing was built from it"
        )

    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_OPTION_INT:
            raise bad(f"is out of range (at most {MAX_OPTION_INT} in size)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise bad("is not a finite number")
    elif isinstance(value, str):
        if len(value) > MAX_OPTION_STR:
            raise bad(f"is longer than {MAX_OPTION_STR} characters")
    elif isinstance(value, (list, tuple, Mapping)):
        if depth >= 3 or len(value) > MAX_OPTION_ITEMS:
            raise bad(f"is nested deeper than 3 or holds more than {MAX_OPTION_ITEMS} items")
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            _check_value(f"{name}[{key!r}]", item, what, depth + 1)


def _build_on_meta(build: Callable[..., nn.Module], options: Mapping[str, Any]) -> nn.Module | None:
    """The network with shapes but no storage; ``None`` if the builder cannot run on the meta device."""
    try:
        with torch.device("meta"):
            return build(**options)
    except NotImplementedError:
        return None
    except RuntimeError as exc:
        if "meta" in str(exc).lower():  # the builder computes with real values (e.g. .item()) at build time
            return None
        raise


@dataclass
class _Fit:
    missing: list[str]
    unexpected: list[str]
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, built, in the file

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self) -> str:
        if self.shapes:
            key, built, held = self.shapes[0]
            return f"{key} is {list(held)} in the file but {list(built)} in the network they describe"
        detail = []
        if self.missing:
            detail.append(f"{len(self.missing)} tensors missing (e.g. {self.missing[0]})")
        if self.unexpected:
            detail.append(f"{len(self.unexpected)} unexpected (e.g. {_shown(self.unexpected[0])})")
        return " and ".join(detail)


def _fit(net: nn.Module, state: Mapping[str, torch.Tensor]) -> _Fit:
    expected = net.state_dict()
    return _Fit(
        missing=[k for k in expected if k not in state],
        unexpected=[k for k in state if k not in expected],
        shapes=[
            (k, tuple(t.shape), tuple(state[k].shape))
            for k, t in expected.items()
            if k in state and tuple(t.shape) != tuple(state[k].shape)
        ],
    )


def _values(net: nn.Module) -> int:
    return sum(t.numel() for t in net.state_dict().values())


def _culprits(
    build: Callable[..., nn.Module], options: Mapping[str, Any], state: Mapping[str, torch.Tensor], fit: _Fit
) -> list[str]:
    """The options to blame, in order of evidence.

    One whose default makes the network fit the tensors; else ints that appear only in the
    mismatching built shape; else the one whose default shrinks an oversized network most.
    """
    held = sum(t.numel() for t in state.values())
    built = _values(_build_on_meta(build, options) or nn.Module())
    shrink: dict[str, int] = {}
    for name in sorted(options):
        rest = {k: v for k, v in options.items() if k != name}
        try:
            net = _build_on_meta(build, rest)
        except Exception:  # a required option: dropping it proves nothing
            continue
        if net is None:
            continue
        if not _fit(net, state):
            return [name]
        shrink[name] = built - _values(net)
    if fit.shapes:
        _, built_shape, held_shape = fit.shapes[0]
        odd = set(built_shape) - set(held_shape)
        named = [k for k, v in sorted(options.items()) if isinstance(v, int) and not isinstance(v, bool) and v in odd]
        if named:
            return named
    if shrink and built > 4 * max(held, 1):
        name = max(shrink, key=shrink.__getitem__)
        if shrink[name] * 4 >= built * 3:  # its default removes at least three quarters of the network
            return [name]
    return []


def check_options(
    build: Callable[..., nn.Module], options: Mapping[str, Any], state: Mapping[str, torch.Tensor], what: str
) -> None:
    """Refuse generator ``options`` that do not rebuild the network whose tensors ``state`` holds.

    Options read from a weights file (its metadata, or a converter's reading of it) decide how
    big a network gets built, so a 200-byte file could ask for gigabytes. Before anything is
    allocated, every number is bounded, then ``build(**options)`` runs on the ``meta`` device
    (shapes only, no memory) and its state-dict keys and shapes are compared with ``state``.
    After this check the real network takes no more memory than the file's own tensors.
    Raises :class:`WeightsUnavailable` (exit 3) naming the option to blame where one can be found.
    """
    for name, value in options.items():
        _check_value(name, value, what)
    try:
        net = _build_on_meta(build, options)
    except AnimeError as exc:
        raise WeightsUnavailable(
            f"{what}: its generator options ({_fmt(options)}) do not fit this model: {exc}"
        ) from None
    except Exception as exc:  # any builder failure on options from a file is the file's fault
        raise WeightsUnavailable(
            f"{what}: its generator options ({_fmt(options)}) do not build this model's generator "
            f"({type(exc).__name__}: {exc}); the file's metadata is wrong or damaged"
        ) from None
    if net is None:
        return
    fit = _fit(net, state)
    if not fit:
        return
    blamed = _culprits(build, options, state, fit)
    built = sum(t.numel() for t in net.state_dict().values())
    held = sum(t.numel() for t in state.values())
    size = f"they describe {built:,} values, the file holds {held:,}"
    if blamed:
        names = ", ".join(f"{_shown(str(k), 60)}={_short(options[k])}" for k in blamed)
        raise WeightsUnavailable(
            f"{what}: generator option {names} does not match the file's tensors ({fit.describe()}; {size}); "
            f"the file's metadata is wrong or damaged, so nothing was built from it"
        )
    raise WeightsUnavailable(
        f"{what} does not fit the generator its options describe ({_fmt(options)}: {fit.describe()}; {size}); "
        f"check that the file is for this model and variant"
    )


def build_loaded(
    build: Callable[..., nn.Module], options: Mapping[str, Any], state: Mapping[str, torch.Tensor], what: str
) -> nn.Module:
    """``build(**options)`` with ``state`` loaded, after :func:`check_options` found that they fit."""
    check_options(build, options, state, what)
    net = build(**options)
    load_into(net, state, what)
    return net
