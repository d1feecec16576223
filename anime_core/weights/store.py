"""The weights cache: verified downloads, offline import, integrity checks.

Cache root: ``$ANIME_HOME`` or ``~/.cache/anime``; a style's file lives in
``<root>/weights/<model>/<style>/<file name>`` (a source of several files, such as a TF
checkpoint's ``.index`` and ``.data``, puts them all in that folder). A download streams to a
temp file beside its target with a progress bar, is checked against the published hash (sha256,
or the git blob SHA-1 that GitHub shows), then renamed into place: a partial or tampered file
never becomes visible, also when the process is stopped by Ctrl-C or SIGTERM. The files of one
source are renamed only once every one of them has verified. A download gives up when
the server stalls (less than ``STALL_MIN_BYTES`` in ``$ANIME_STALL_SECONDS``, default 30 s)
and never writes more than the published size or the announced ``Content-Length``.
Without network (or with ``ANIME_OFFLINE=1``) the error gives the URL and the
``anime weights import`` command that installs a file obtained elsewhere. No torch here:
``anime weights list`` and ``anime info`` stay light.

A download or import killed outright (SIGKILL, power loss) leaves its hidden ``.part`` file; the
next download, import or ``anime weights verify`` removes it (:func:`sweep_partial`), never one a
running process is still writing. A cache folder that cannot be written (read-only, or a file in
its place) is one sentence with exit 3 that names it and says to set ``ANIME_HOME``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.fsutil import abandoned_temps, atomic_path
from anime_core.specs import StyleSpec, WeightsFile, WeightsSource

#: a published file: a WeightsFile, or a WeightsSource standing for its first file (same fields)
Published = WeightsFile | WeightsSource

CHUNK = 1 << 20
STALL_SECONDS = 30.0  # default window; ANIME_STALL_SECONDS overrides it
STALL_MIN_BYTES = 16 << 10  # less than this in one window is a stall (0.5 KiB/s over 30 s)
UNDECLARED_LIMIT = 4 << 30  # cap when neither the source nor the server states a size
PART = ".part"  # suffix of the temp files of downloads and imports

CacheStatus = Literal["cached", "not cached", "corrupt"]


class _DownloadFailed(Exception):
    """Internal: a transfer problem already phrased for the user (becomes WeightsUnavailable)."""


def anime_home() -> Path:
    """The cache root: ``$ANIME_HOME`` or ``~/.cache/anime``."""
    return Path(os.environ.get("ANIME_HOME") or Path.home() / ".cache" / "anime").expanduser()


def stall_seconds() -> float:
    """The stall window in seconds: ``$ANIME_STALL_SECONDS`` or 30."""
    raw = os.environ.get("ANIME_STALL_SECONDS")
    if not raw:
        return STALL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageError(f"ANIME_STALL_SECONDS must be a number of seconds above 0, not '{raw}'")
    return value


@dataclass
class Sweep:
    """Temp files of downloads and imports found in the cache: removed (their writer is gone) or in use."""

    removed: list[tuple[Path, int]] = field(default_factory=list)  # (path, size in bytes)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it was not removed)
    in_use: list[tuple[Path, int | None]] = field(default_factory=list)  # (path, writer's PID)


def sweep_partial() -> Sweep:
    """Remove the ``.part`` files that killed downloads and imports left in the cache.

    Only files whose writer is gone (no lock held on them, their PID no longer running) are removed;
    a concurrent ``anime weights import`` keeps its file. Never raises: a cache that cannot be read
    or written is explained where it is written to.
    """
    sweep = Sweep()
    try:
        dead, sweep.in_use = abandoned_temps(anime_home() / "weights", (PART,))
    except OSError:
        return sweep
    for path in dead:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:  # another process swept it first
            continue
        except OSError as exc:
            sweep.kept.append((path, exc.strerror or str(exc)))
            continue
        sweep.removed.append((path, size))
    return sweep


def _unwritable(folder: Path, exc: OSError) -> WeightsUnavailable:
    """The one-sentence error for a cache folder that cannot take a file (exit 3)."""
    home = anime_home()
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        why, alternative = f"{blocker} is a file, not a folder", ""
    else:
        why, alternative = f"{folder} cannot be written ({exc.strerror or exc})", f" or make {home} writable"
    return WeightsUnavailable(
        f"the weights cache {home} cannot hold weights: {why}; set ANIME_HOME to a writable folder{alternative}"
    )


def _cache_temp(stack: ExitStack, dest: Path) -> Path:
    """A temp file beside ``dest`` in the cache, renamed into place when ``stack`` closes without error."""
    try:
        return stack.enter_context(atomic_path(dest, suffix=PART))
    except OSError as exc:
        raise _unwritable(dest.parent, exc) from None


def cached_path(key: str, source: WeightsSource) -> Path:
    """Where the file of ``key`` (``model:style`` or any ``group:name``) lives in the cache (the first, if several)."""
    group, _, name = key.partition(":")
    return anime_home() / "weights" / group / (name or "_") / source.file_name


def cached_paths(key: str, source: WeightsSource) -> list[tuple[WeightsFile, Path]]:
    """Every file of ``source`` with its place in the cache, the loader's file first."""
    folder = cached_path(key, source).parent
    out = []
    for f in source.files:
        name = f.file_name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise WeightsUnavailable(
                f"weights {key} name the file {name!r}, which is not a plain file name; the plugin that registers "
                f"{key} is broken, report it to its author"
            )
        out.append((f, folder / name))
    return out


def file_digests(path: str | Path) -> dict[str, str]:
    """``{"sha256": ..., "git_sha1": ...}`` of a file, read once."""
    path = Path(path)
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            sha256.update(chunk)
            git.update(chunk)
    return {"sha256": sha256.hexdigest(), "git_sha1": git.hexdigest()}


def _mismatch(digests: dict[str, str], source: Published) -> str | None:
    """A description of the hash mismatch, or ``None`` if the file matches every published hash."""
    for kind in ("sha256", "git_sha1"):
        expected = getattr(source, kind)
        if expected and digests[kind] != expected.lower():
            return f"{kind} is {digests[kind]}, expected {expected.lower()}"
    prefix = (source.sha256_prefix or "").lower()
    if prefix and not digests["sha256"].startswith(prefix):
        return f"sha256 is {digests['sha256']}, expected it to start with {prefix}"
    return None


def _problem(path: Path, source: Published) -> str | None:
    """What is wrong with ``path`` as ``source``'s file (the size first: no hashing gigabytes of junk)."""
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        return f"size is {size} bytes, expected {source.size}"
    return _mismatch(file_digests(path), source)


def verify_file(path: str | Path, source: Published) -> bool:
    """True when ``path`` matches the source's published size and hash(es)."""
    return _problem(Path(path), source) is None


def cache_status(key: str, source: WeightsSource) -> CacheStatus:
    """``"cached"`` (every file present and verified), ``"not cached"`` or ``"corrupt"`` (one present but wrong)."""
    status: CacheStatus = "cached"
    for published, path in cached_paths(key, source):
        if not path.exists():
            status = "not cached"
            continue
        try:
            if _problem(path, published) is not None:
                return "corrupt"
        except OSError:  # a folder in its place, no read permission: unusable all the same
            return "corrupt"
    return status


def _import_hint(key: str, source: WeightsSource | None = None) -> str:
    files = " ".join(f.file_name for f in source.files) if source is not None and source.companions else "FILE"
    return f"anime weights import {key} {files}"


def fetch(key: str, source: WeightsSource, progress: bool = True) -> Path:
    """The verified cached file for ``key``, downloading what is missing (exit 3 on failure).

    For a source of several files, the path of the first; all of them are in its folder.
    """
    sweep_partial()  # what killed downloads and imports left behind
    missing = []
    for published, dest in cached_paths(key, source):
        if not dest.exists():
            missing.append((published, dest))
            continue
        try:
            problem = _problem(dest, published)
        except OSError as exc:  # a folder in its place, no read permission
            problem = f"unreadable: {exc.strerror or exc}"
        if problem is not None:
            raise WeightsUnavailable(
                f"cached weights {dest} are corrupt ({problem}); delete the file and run "
                f"'anime weights pull {key}', or install a good copy with '{_import_hint(key, source)}'"
            )
    if missing and os.environ.get("ANIME_OFFLINE"):
        urls = " and ".join(p.url for p, _ in missing)
        raise WeightsUnavailable(
            f"weights for {key} are not cached and ANIME_OFFLINE is set; download {urls} "
            f"elsewhere and run '{_import_hint(key, source)}'"
        )
    if missing:
        with _sigterm_cleans_up(), ExitStack() as stack:  # every file verified before any is renamed
            for published, dest in missing:
                _download(key, source, published, _cache_temp(stack, dest), progress)
    return cached_path(key, source)


def fetch_style(style: StyleSpec, progress: bool = True) -> Path:
    return fetch(style.key, style.source, progress)


@contextmanager
def _sigterm_cleans_up() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` while a temp file exists, so it is removed as on Ctrl-C.

    A handler installed before (e.g. one that checkpoints training) still runs first.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _announced_length(resp: Any) -> int | None:
    try:
        length = int(resp.headers.get("Content-Length") or -1)
    except ValueError:
        return None
    return length if length >= 0 else None


def _of(expected: int | None) -> str:
    return f" of {expected}" if expected is not None else ""


def _stream(resp: Any, out: Any, key: str, source: Published, progress: bool) -> None:
    """Copy the body to ``out``, enforcing the stall window and the size limit."""
    from tqdm.auto import tqdm

    announced = _announced_length(resp)
    if source.size is not None and announced is not None and announced != source.size:
        raise _DownloadFailed(
            f"the server announces {announced} bytes but the published size is {source.size}, so it is not "
            f"the published file"
        )
    expected = source.size if source.size is not None else announced
    limit = expected if expected is not None else UNDECLARED_LIMIT
    window = stall_seconds()
    received = 0
    window_start, window_bytes = time.monotonic(), 0
    with tqdm(
        total=expected, unit="B", unit_scale=True, desc=f"downloading {key}", disable=not progress, leave=False
    ) as bar:
        while True:
            try:
                # read1: whatever has arrived (read(n) would block until n bytes, hiding a trickle)
                chunk = resp.read1(min(CHUNK, limit + 1 - received))
            except TimeoutError:
                raise _DownloadFailed(
                    f"the server stalled: nothing arrived for {window:g} s after {received}{_of(expected)} bytes"
                ) from None
            except (http.client.IncompleteRead, ConnectionError) as exc:
                raise _DownloadFailed(
                    f"connection dropped after {received}{_of(expected)} bytes ({type(exc).__name__})"
                ) from None
            if not chunk:
                break
            received += len(chunk)
            if received > limit:
                what = "the published size" if source.size is not None else "the announced Content-Length"
                if expected is None:
                    what = f"the {UNDECLARED_LIMIT}-byte limit for a file of unknown size"
                raise _DownloadFailed(f"the server sent more than {what} ({limit} bytes); stopped there")
            out.write(chunk)
            bar.update(len(chunk))
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= window:
                if window_bytes < STALL_MIN_BYTES:
                    raise _DownloadFailed(
                        f"the server stalled: {window_bytes} bytes arrived in {now - window_start:.0f} s "
                        f"(less than {STALL_MIN_BYTES}), after {received}{_of(expected)} bytes"
                    )
                window_start, window_bytes = now, 0
    if expected is not None and received < expected:
        raise _DownloadFailed(f"connection dropped after {received} of {expected} bytes")


def _download(key: str, source: WeightsSource, published: Published, tmp: Path, progress: bool) -> None:
    """Download ``published`` into ``tmp`` and verify it; raising makes the caller's ``atomic_path`` delete it."""
    hint = _import_hint(key, source)
    again = f"try again later, or download the file elsewhere and install it with '{hint}'"
    window = stall_seconds()
    url = published.url
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "anime-core"})
        with urllib.request.urlopen(request, timeout=window) as resp, tmp.open("wb") as out:
            _stream(resp, out, key, published, progress)
    except _DownloadFailed as exc:
        raise WeightsUnavailable(f"could not download weights for {key} from {url}: {exc}; {again}") from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsUnavailable(
            f"could not download weights for {key} from {url} ({reason}); download the file "
            f"elsewhere and install it with '{hint}'"
        ) from exc
    problem = _problem(tmp, published)
    if problem is not None:
        raise WeightsUnavailable(
            f"the file downloaded from {url} does not match its published size and hash ({problem}), "
            f"so it was not kept; get a genuine copy and install it with '{hint}'"
        )


def _digests_if_sized(path: Path, published: Published, cache: dict[Path, dict[str, str]]) -> str | None:
    """:func:`_problem`, hashing each given file at most once."""
    if published.size is not None and path.stat().st_size != published.size:
        return f"size is {path.stat().st_size} bytes, expected {published.size}"
    if path not in cache:
        cache[path] = file_digests(path)
    return _mismatch(cache[path], published)


def _match_files(key: str, source: WeightsSource, given: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file to copy, cache destination) for every file of ``source``, from ``given`` or beside them.

    A given file is matched by content (size and hash), whatever its name; a file of a
    several-file source that was not given is looked for under its published name beside the
    given ones.
    """
    digests: dict[Path, dict[str, str]] = {}
    unused = list(given)
    pairs = []
    for published, dest in cached_paths(key, source):
        found = next((f for f in unused if _digests_if_sized(f, published, digests) is None), None)
        if found is None:
            found = _beside(key, source, published, given, digests)
        else:
            unused.remove(found)
        pairs.append((found, dest))
    if unused:
        raise WeightsUnavailable(
            f"{unused[0]} is none of the published files of {key} "
            f"({', '.join(f.file_name for f in source.files)}); check that you downloaded the right file"
        )
    return pairs


def _beside(
    key: str, source: WeightsSource, published: WeightsFile, given: Sequence[Path], digests: dict[Path, dict[str, str]]
) -> Path:
    """The verified copy of ``published`` beside the given files; else the error naming the wrong or missing file."""
    named = next((f for f in given if f.name == published.file_name), None)
    if len(source.files) == 1 or named is not None:
        wrong = named or given[0]
        raise WeightsUnavailable(
            f"{wrong} is not the published weights for {key} ({_digests_if_sized(wrong, published, digests)}); "
            f"download it again from {published.url}"
        )
    found = next((b for b in (f.parent / published.file_name for f in given) if b.is_file()), None)
    if found is None:
        raise WeightsUnavailable(
            f"{key} is made of {len(source.files)} files and {published.file_name} is neither among the files given "
            f"nor beside them; download it from {published.url} and run '{_import_hint(key, source)}'"
        )
    problem = _digests_if_sized(found, published, digests)
    if problem is not None:
        raise WeightsUnavailable(
            f"{found} is not the published {published.file_name} of {key} ({problem}); download it again from "
            f"{published.url}"
        )
    return found


def import_file(key: str, source: WeightsSource, file: str | Path, *more: str | Path) -> Path:
    """Verify the given file(s) against the published sizes and hashes and copy them into the cache atomically.

    For a source of several files, the others may be given too or lie beside ``file`` under their
    published names; nothing is installed unless every file verifies. Returns the first file's path.
    """
    given = [Path(f).expanduser() for f in (file, *more)]
    for f in given:
        if not f.is_file():
            raise WeightsUnavailable(f"{f} is not a file; give the path of the downloaded weights")
    pairs = _match_files(key, source, given)
    sweep_partial()
    with _sigterm_cleans_up(), ExitStack() as stack:
        for src, dest in pairs:
            tmp = _cache_temp(stack, dest)
            try:
                shutil.copyfile(src, tmp)
            except OSError as exc:  # a full disk, an unreadable source: nothing is installed
                raise WeightsUnavailable(
                    f"could not copy {src} into the weights cache at {dest.parent} ({exc.strerror or exc}); "
                    f"free space there or set ANIME_HOME to another folder, then run the import again"
                ) from None
    return cached_path(key, source)
