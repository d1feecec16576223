"""The placeholder weights behind the example's ``animegan:example`` style.

The example has no trained AnimeGAN style to publish, so its style points at a *placeholder*: a
file anyone can reproduce byte for byte with ``python -m anime_example_plugin.placeholder OUT``,
holding the keys and shapes of the AnimeGANv2 PyTorch layout (``animegan.v2-pytorch``) filled with
a fixed integer pattern (no RNG, no float maths that could differ between machines). Its sha256 is
the one the style publishes, so download, verification, ``anime weights import`` and conversion
can be exercised end to end; the images it makes are not anime. A real style plugin publishes a
trained file instead and keeps everything else the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from anime_example_plugin.styles import FILE_NAME


def placeholder_state() -> dict[str, torch.Tensor]:
    """AnimeGANv2 generator keys and shapes with values ``((i * 2654435761 + k) mod 2001 - 1000) / 50000``."""
    from anime_plugin_animegan.generator import GeneratorV2

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in GeneratorV2().state_dict().items()}
    state = {}
    for k, (name, shape) in enumerate(sorted(shapes.items())):
        n = 1
        for s in shape:
            n *= s
        ints = (torch.arange(n, dtype=torch.int64) * 2654435761 + k) % 2001 - 1000
        state[name] = (ints.to(torch.float32) / 50000.0).reshape(shape).contiguous()
    return state


def write_placeholder(path: str | Path) -> Path:
    """Write the placeholder file (no metadata: it is a foreign layout, converted on load)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(placeholder_state(), str(path))
    return path


if __name__ == "__main__":
    print(write_placeholder(sys.argv[1] if len(sys.argv) > 1 else FILE_NAME))
