"""The bounds of a run's options, one copy for ``anime run``, the web app and :func:`anime_core.run`.

Light (no torch, no numpy): ``anime run --help`` shows them.
"""

from __future__ import annotations

import math
from typing import Any

from anime_core import budget
from anime_core.errors import UsageError

MIN_SIZE = 8  # px; the long side ``--size`` may ask for
MIN_TILE = 16  # px; --tile 0 turns tiling off
#: the most samples one ``anime run --num`` draws. They are held together and laid out as one sheet: 10,000
#: samples of 64 px make a 6,602 px square sheet (44 MP); more belong in several runs with other seeds
MAX_NUM = 10_000
#: the most samples ``anime eval --num`` draws (held together, written one file each): FID's usual 50,000, doubled
MAX_EVAL_NUM = 100_000


def check_samples(pipe: Any, num: int, sheet: bool = True) -> None:
    """Refuse (``UsageError``) a ``--num`` above the limit, or whose samples would not fit memory or one sheet.

    The samples are held together as float32 (with ``sheet``, also laid out as one image of at most
    ``DEFAULT_MAX_PIXELS``, as a float and an 8-bit copy); their size is measured on one sample.
    """
    budget.check_count(num, MAX_NUM if sheet else MAX_EVAL_NUM, "--num", advice="draw more in runs with other seeds")
    _, c, h, w = pipe.decode_latents(pipe.latents(1, 0)).shape
    per_sample = c * h * w * 4 + pipe.latent_dim * 4 + ((h + 2) * (w + 2) * c * 5 if sheet else 0)
    budget.check_bytes(num * per_sample, f"--num {num:,} samples of {w}x{h}", advice="lower --num")
    if not sheet:
        return
    cols = max(1, math.ceil(math.sqrt(num)))
    width, height = cols * (w + 2) + 2, math.ceil(num / cols) * (h + 2) + 2
    if width * height > budget.DEFAULT_MAX_PIXELS:
        raise UsageError(
            f"--num {num:,} samples of {w}x{h} make a {width}x{height} sheet ({budget.fmt_mp(width * height)}), above "
            f"the {budget.DEFAULT_MAX_PIXELS / 1e6:g} MP limit of one image; lower --num or draw more in other runs"
        )
