"""What the core reads from a generator: the contract a registered generator builder's module follows.

A generator is an ``nn.Module``; the pipelines, the tiler and the ONNX export read a few plain
attributes from it instead of asking the plugin. They are named here once, with their meaning:

- :class:`TranslateGenerator` (``ModelSpec.kind == "translate"``) **must** have ``stride``;
- :class:`GenerateGenerator` (``kind == "generate"``) **must** have ``latent_dim``;
- either **may** have the attributes of :data:`OPTIONAL` (``min_side``, ``in_channels``,
  ``out_channels``, ``scale``, ``num_classes``, ``class_names``, ``image_size``); where one is
  missing the core uses the default named there.

The ONNX export writes the attributes a generator has into the graph's metadata and restores them
on the ONNX Runtime generator (:data:`EXPORTED`), so a pipeline reads the same values from either
backend. The plugin contract test (``anime_core.testing``, check ``generators``) builds every
registered generator, each variant of a model included, on the meta device and checks it with
:func:`problems`.

Light: no torch at import (the protocols name ``torch.Tensor`` only for type checkers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class TranslateGenerator(Protocol):
    """An image-to-image generator: ``(N, C, H, W)`` in its input domain -> ``(N, C', H*s, W*s)``.

    The pipeline's ``preprocess`` makes its input (RGB in [-1, 1] by default) and ``postprocess``
    reads its output; ``s`` is the pipeline's ``out_scale`` (1, or ``scale`` for super-resolution).
    """

    #: input sides must be multiples of it (the pipeline pads to it and crops back): 4 for two
    #: halvings, 256 for an 8-level U-Net, 1 when any size works
    stride: int

    def __call__(self, x: torch.Tensor, /) -> Any: ...


@runtime_checkable
class GenerateGenerator(Protocol):
    """A noise-to-image generator: ``(N, latent_dim)`` standard normal -> ``(N, 3, S, S)`` in [-1, 1].

    A class-conditional one (``num_classes > 0``) also takes ``label``: ``(N,)`` int64 indices.
    """

    #: length of the latent vector the pipeline draws from N(0, 1)
    latent_dim: int

    def __call__(self, z: torch.Tensor, /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Attribute:
    """One generator attribute the core reads: its type, the value used when it is missing, its meaning.

    ``required_for``: the model kind whose generators must have it (else it is optional).
    """

    name: str
    type: type
    default: Any
    doc: str
    required_for: str = ""
    minimum: int = 1  # for ints


#: every attribute the core reads from a generator, in the order an ONNX export records them
ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    Attribute("stride", int, 1, "input sides must be multiples of it (the pipeline pads and crops back)",
              required_for="translate"),
    Attribute("min_side", int, None, "smallest input side it takes (else the pipeline probes for it)"),
    Attribute("latent_dim", int, 100, "length of the N(0, 1) latent vector", required_for="generate"),
    Attribute("in_channels", int, 3, "channels of its input (ae's lab variant: 1, the L channel)"),
    Attribute("out_channels", int, 3, "channels of its output"),
    Attribute("scale", int, 1, "output side / input side of a super-resolution generator (pixelsake-sr: 4)"),
    Attribute("num_classes", int, 0, "classes of a class-conditional generate model (0: unconditional)", minimum=0),
    Attribute("class_names", list, (), "names of those classes, in label order (``--class NAME``)"),
    Attribute("image_size", int, None, "side of the images a generate model makes"),
)}
#: the attribute a generator must have, by model kind
REQUIRED: dict[str, Attribute] = {a.required_for: a for a in ATTRIBUTES.values() if a.required_for}
#: attributes a generator may have; the core uses ``default`` where one is missing
OPTIONAL: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES.values() if not a.required_for}
#: what an ONNX export records in the graph's metadata and restores on the ONNX Runtime generator
EXPORTED: tuple[str, ...] = tuple(ATTRIBUTES)


def protocol(kind: str) -> type:
    """The protocol a generator of a model of ``kind`` (``translate`` | ``generate``) follows."""
    return TranslateGenerator if kind == "translate" else GenerateGenerator


def problems(generator: Any, kind: str) -> list[str]:
    """What ``generator`` lacks or has wrong against the contract of ``kind``; empty when it follows it."""
    found: list[str] = []
    required = REQUIRED[kind]
    if not isinstance(generator, protocol(kind)):
        found.append(f"{type(generator).__name__} has no attribute '{required.name}' (required for a {kind} model: "
                     f"{required.doc})")
    for attr in ATTRIBUTES.values():
        if not hasattr(generator, attr.name):
            continue  # a missing required one is reported above
        value = getattr(generator, attr.name)
        why = _wrong(attr, value)
        if why:
            found.append(f"{type(generator).__name__}.{attr.name} is {value!r:.40}, {why}")
    return found


def _wrong(attr: Attribute, value: Any) -> str:
    """Why ``value`` does not fit ``attr``, or ``""``."""
    if attr.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an int"
        return f"expected at least {attr.minimum}" if value < attr.minimum else ""
    if attr.type is list:
        ok = isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)
        return "" if ok else "expected a list of names"
    return "" if isinstance(value, attr.type) else f"expected {attr.type.__name__}"
