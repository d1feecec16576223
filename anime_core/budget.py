"""Estimate before you allocate: the one budget for every size that comes from outside.

A file's header, a weights file's metadata, a frame's declared size, a command-line option or a
web form field can each ask for any amount of memory or time. Every such size is checked here,
*before* the allocation it would cause, against two limits a user can raise:

- ``--max-pixels`` (default :data:`DEFAULT_MAX_PIXELS`): the pixels of one image, page or frame;
- ``ANIME_MAX_MEMORY`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix; default: 3/4 of the
  memory this process may use, the smallest of physical memory, the cgroup limit and
  ``RLIMIT_AS``): the bytes one allocation from outside may need.

A refusal is one sentence naming the figure and the limit. The caller picks the error class
that says whose figure it is: :class:`~anime_core.errors.UsageError` for an option (exit 2),
:class:`~anime_core.errors.WeightsUnavailable` for a weights file (exit 3), the reader's own
per-input error for an image or video (that input fails, the others are written).

The module imports only the standard library, so light CLI modules may use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
from pathlib import Path

from anime_core.errors import AnimeError, UsageError

DEFAULT_MAX_PIXELS = 100_000_000  # 10k x 10k; larger inputs are refused as likely bombs
MEMORY_ENV = "ANIME_MAX_MEMORY"
#: the most frames a latent walk option (``--interpolate N``, ``--steps N``) draws: they are held together and
#: written as one strip or set; 1,000 is 40 s at 24 frames a second
MAX_WALK_FRAMES = 1_000
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """``"512M"`` / ``"4G"`` / ``"1.5G"`` / ``"1000000"`` -> bytes; a ``UsageError`` for anything else."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UsageError(f"{MEMORY_ENV}={text!r} is not a size; give bytes or a number with K, M, G or T (e.g. 8G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise UsageError(f"{MEMORY_ENV}={text!r} must be above zero (e.g. 8G)")
    return value


def fmt_bytes(n: float) -> str:
    """Bytes for a message: ``"6.0 GiB"``, ``"512 MiB"``, ``"96 KiB"``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}" if n < 10 * size else f"{n / size:.0f} {unit}"
    return f"{int(n)} bytes"


def fmt_mp(pixels: float) -> str:
    """Pixels for a message: ``"0.04 MP"``, ``"105 MP"``, ``"2,700 MP"``."""
    mp = pixels / 1e6
    return f"{mp:,.0f} MP" if mp >= 1000 else f"{mp:.3g} MP"


def _usable_memory() -> int:
    """The memory this process may use: physical memory, capped by a cgroup limit and RLIMIT_AS."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cg).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1):
        limits.append(max(soft - _address_space_in_use(), 0))
    return min(limits) if limits else 8 << 30


def _address_space_in_use() -> int:
    """This process's virtual size (what RLIMIT_AS counts), 0 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def max_memory() -> int:
    """The bytes one allocation from outside may need: ``ANIME_MAX_MEMORY``, else 3/4 of usable memory."""
    raw = os.environ.get(MEMORY_ENV)
    if raw:
        return parse_bytes(raw)
    return max(_usable_memory() * 3 // 4, 64 << 20)


def check_bytes(nbytes: float, what: str, error: type[AnimeError] = UsageError, advice: str = "") -> None:
    """Refuse ``what`` if it would need more than the memory budget.

    ``what`` names the thing and its cause (``"padding to stride 8192 (from the file's metadata)"``);
    ``advice`` is what to do instead, if anything better than raising the budget.
    """
    limit = max_memory()
    if nbytes > limit:
        how = f"{advice}, or raise {MEMORY_ENV}" if advice else f"raise {MEMORY_ENV} if this is genuine"
        raise error(f"{what} would need {fmt_bytes(nbytes)}, above the {fmt_bytes(limit)} memory budget; {how}")


def check_pixels(width: int, height: int, max_pixels: int, what: str, error: type[AnimeError] = UsageError) -> None:
    """Refuse a ``width`` x ``height`` image, page or frame above ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise error(f"{what} declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise error(
            f"{what} is {width}x{height} ({fmt_mp(width * height)}), above the {max_pixels / 1e6:g} MP limit; "
            "shrink it or raise --max-pixels if it is genuine"
        )


def walk_frames(ctx: object, param: object, value: int | None) -> int | None:
    """A click callback for a walk's frame count (``--interpolate N``, ``--steps N``): at most ``MAX_WALK_FRAMES``."""
    if value is not None and value > MAX_WALK_FRAMES:
        name = (getattr(param, "opts", None) or ["the frame count"])[0]
        raise UsageError(f"{name} {value:,} is above the limit of {MAX_WALK_FRAMES:,} frames; use fewer")
    return value


def check_count(n: int, limit: int, what: str, error: type[AnimeError] = UsageError, advice: str = "") -> None:
    """Refuse a count from outside (entries, parts, iterations, images) above a fixed limit."""
    if n > limit:
        raise error(f"{what} is {n:,}, above the limit of {limit:,}" + (f"; {advice}" if advice else ""))
