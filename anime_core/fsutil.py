"""Atomic file writes: a temp file beside the target, renamed into place only when complete.

A reader (or a crash) never sees a half-written output, checkpoint config or weights file. The
finished file gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s ``0o600``.

A process killed while writing (SIGKILL, power loss) cannot remove its temp file. So that one can
be told from a write in progress, the temp name carries the writer's PID
(``.NAME.PID-XXXXXXXX.SUFFIX``) and the writer holds an exclusive ``flock`` on it until it is
renamed or removed: :func:`abandoned_temps` finds those whose lock is free and whose PID is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; a temp file is abandoned when its PID is gone
    fcntl = None  # type: ignore[assignment]

#: ``.NAME.PID-XXXXXXXX.SUFFIX`` (this module) or ``.NAME.XXXXXXXX.SUFFIX`` (before PIDs were recorded)
_TEMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(dest: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path in ``dest``'s folder; on success it replaces ``dest``, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}-", suffix=suffix)
    tmp = Path(name)
    fd = _lock(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_path`: the old file or the whole new one, never half."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)

#: bytes; the small JSON files of a cache (a verdict, a rate) are a few hundred
MAX_CACHE_JSON = 4096


def read_cache_json(path: str | Path, limit: int = MAX_CACHE_JSON) -> Any:
    """The JSON a small cache file holds, or None where it is missing, unreadable, over ``limit`` bytes or not
    JSON (the caller computes the value again)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
        return json.loads(raw) if len(raw) <= limit else None
    except (OSError, ValueError):
        return None


def write_cache_json(path: str | Path, data: Any) -> None:
    """Write a small cache file atomically; a folder that cannot be written leaves it to be computed next time."""
    with contextlib.suppress(OSError), atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


def _lock(fd: int) -> int | None:
    """Hold an exclusive ``flock`` on the new temp file while it exists: its writer is alive.

    Returns the descriptor to close when done, or ``None`` (closed now) where there is no ``flock``
    (Windows, where an open file also cannot be renamed) or the file system refuses it: the PID
    in the name still tells a live writer from a dead one.
    """
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            pass
    os.close(fd)
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def _unlocked(path: Path) -> bool:
    """True when nobody holds the writer's lock on ``path`` (taking it, and letting go at once)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def temp_owner(path: Path, suffixes: Iterable[str]) -> tuple[bool, int | None] | None:
    """``None`` if ``path`` is not an :func:`atomic_path` temp file with one of ``suffixes``; else
    (abandoned, writer's PID or ``None`` when the name predates PIDs).

    Abandoned: no process holds its lock and its PID (if named) is gone. A live writer is never
    called abandoned, also in the instant between creating its file and locking it (its PID is alive).
    """
    m = _TEMP.match(path.name)
    if m is None or m["suffix"] not in set(suffixes) or not path.is_file() or path.is_symlink():
        return None
    pid = int(m["pid"]) if m["pid"] else None
    if pid is not None and _alive(pid):
        return False, pid
    return _unlocked(path), pid


def abandoned_temps(folder: Path, suffixes: Iterable[str]) -> tuple[list[Path], list[tuple[Path, int | None]]]:
    """Temp files under ``folder`` (recursive) left by killed writers, and those still being written (with PID)."""
    suffixes = tuple(suffixes)
    dead: list[Path] = []
    live: list[tuple[Path, int | None]] = []
    if not folder.is_dir():
        return dead, live
    for path in sorted(folder.rglob(".*")):
        owner = temp_owner(path, suffixes)
        if owner is None:
            continue
        abandoned, pid = owner
        if abandoned:
            dead.append(path)
        else:
            live.append((path, pid))
    return dead, live
