"""Finding the inputs of a run: files, folders (recursive) and shell patterns, bounded; only regular files."""

from __future__ import annotations

import fnmatch
import glob
import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from anime_core.inference import io, video

MEDIA_EXTENSIONS = io.IMAGE_EXTENSIONS | video.VIDEO_EXTENSIONS


@dataclass(frozen=True)
class InputFile:
    path: Path
    rel: Path  # output name relative to the output folder


def _not_regular(path: Path) -> str:
    mode = path.stat().st_mode
    what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"is {what}, not a regular file; save the image to a file first"


#: directory entries one glob pattern may look at before it is refused (a symlink loop, or a whole disk)
GLOB_LIMIT = 200_000


class GlobTooLarge(Exception):
    """A pattern looked at more than ``GLOB_LIMIT`` entries; the message is the reason shown for it."""


def expand_glob(pattern: str, limit: int | None = None) -> list[str]:
    """The paths matching a shell pattern, as :func:`glob.glob` with ``recursive=True`` finds them, bounded.

    ``**`` (a whole component) is any depth of folders; a folder reached twice (a symlink loop, two links to
    one folder) is walked once, and after ``limit`` entries (default ``GLOB_LIMIT``) :class:`GlobTooLarge` is
    raised. As in glob, wildcards do not match names starting with '.' unless the pattern's component does.
    """
    lister = _Lister(GLOB_LIMIT if limit is None else limit)
    anchor, parts = _split_pattern(pattern)
    paths = [anchor]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        step: list[str] = []
        for path in paths:
            if part == "**":  # the folder itself and every folder below; at the end, everything below
                for folder, entries in lister.walk(path):
                    step.append(folder)
                    step += [os.path.join(folder, e.name) for e in entries if last and not e.name.startswith(".")]
            elif glob.has_magic(part):
                hidden = part.startswith(".")
                step += [os.path.join(path, e.name) for e in lister.entries(path)
                         if (hidden or not e.name.startswith(".")) and fnmatch.fnmatch(e.name, part)
                         and (last or _is_dir(e))]
            else:
                joined = os.path.join(path, part)
                if os.path.lexists(joined) if last else os.path.isdir(joined):
                    step.append(joined)
        paths = step
    return [p for p in dict.fromkeys(paths) if p]


class _Lister:
    """Folder listings for one pattern, counted: past ``limit`` entries in all, :class:`GlobTooLarge`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.seen = limit, 0

    def entries(self, folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder or os.curdir) as it:
                found = list(itertools.islice(it, self.limit - self.seen + 1))
        except OSError:  # not a folder, gone, no permission: matches nothing, as in glob
            return []
        self.seen += len(found)
        if self.seen > self.limit:
            raise GlobTooLarge(f"the pattern looked at over {self.limit:,} files and folders without finishing; "
                               "give a folder or a narrower pattern")
        return found

    def walk(self, top: str) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
        """``top`` and every folder below it with its entries; each real folder once (symlinks followed,
        loops cut), hidden folders skipped."""
        visited: set[tuple[int, int]] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder or os.curdir)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in visited:
                continue
            visited.add((st.st_dev, st.st_ino))
            entries = self.entries(folder)
            yield folder, entries
            below = sorted(e.name for e in entries if not e.name.startswith(".") and _is_dir(e))
            stack += [os.path.join(folder, name) for name in reversed(below)]  # popped in name order


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _split_pattern(pattern: str) -> tuple[str, list[str]]:
    """(where to start: the root or drive, '' for the current folder; the pattern's components)."""
    drive, rest = os.path.splitdrive(pattern)
    seps = os.sep + (os.altsep or "")
    anchor = drive + rest[: len(rest) - len(rest.lstrip(seps))][:1]
    if os.altsep:
        rest = rest.replace(os.altsep, os.sep)
    return anchor, [p for p in rest.split(os.sep) if p]


def collect_inputs(args: Iterable[str]) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and globs; returns (inputs, [(arg, reason)] for bad args).

    Only regular files are read: a FIFO, socket or device named on the command line is refused
    with that reason (reading one could block forever), and one inside a folder is skipped.
    """
    found: list[InputFile] = []
    bad: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(InputFile(path, rel))

    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in MEDIA_EXTENSIONS and f.is_file())
            if not files:
                bad.append((arg, "folder holds no images or videos"))
            for f in files:
                add(f, f.relative_to(p))
        elif p.is_file():
            add(p, Path(p.name))
        elif p.exists():
            bad.append((arg, _not_regular(p)))
        elif any(ch in arg for ch in "*?["):
            try:
                matches = sorted(Path(m) for m in expand_glob(os.path.expanduser(arg)))
            except GlobTooLarge as exc:
                bad.append((arg, str(exc)))
                continue
            odd = [m for m in matches if m.exists() and not (m.is_file() or m.is_dir())]
            bad += [(str(m), _not_regular(m)) for m in odd]
            files = [m for m in matches if m.is_file()]
            if not files and not odd:
                bad.append((arg, "pattern matches no files"))
            for m in files:
                add(m, Path(m.name))
        else:
            bad.append((arg, "no such file or folder"))
    return found, bad
