"""The weights cache: verified downloads, offline import, integrity checks.

Cache root: ``$ANIME_HOME`` or ``~/.cache/anime``; a style's file lives in
``<root>/weights/<model>/<style>/<file name>``. A download streams to a temp file beside its
target with a progress bar, is checked against the published hash (sha256, or the git blob
SHA-1 that GitHub shows), then renamed into place: a partial or tampered file never becomes
visible, also when the process is stopped by Ctrl-C or SIGTERM. A download gives up when
the server stalls (less than ``STALL_MIN_BYTES`` in ``$ANIME_STALL_SECONDS``, default 30 s)
and never writes more than the published size or the announced ``Content-Length``.
Without network (or with ``ANIME_OFFLINE=1``) the error gives the URL and the
``anime weights import`` command that installs a file obtained elsewhere. No torch here:
``anime weights list`` and ``anime info`` stay light.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.fsutil import atomic_path
from anime_core.specs import StyleSpec, WeightsSource

CHUNK = 1 << 20
STALL_SECONDS = 30.0  # default window; ANIME_STALL_SECONDS overrides it
STALL_MIN_BYTES = 16 << 10  # less than this in one window is a stall (0.5 KiB/s over 30 s)
UNDECLARED_LIMIT = 4 << 30  # cap when neither the source nor the server states a size

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


def cached_path(key: str, source: WeightsSource) -> Path:
    """Where the file of ``key`` (``model:style`` or any ``group:name``) lives in the cache."""
    group, _, name = key.partition(":")
    return anime_home() / "weights" / group / (name or "_") / source.file_name


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


def _mismatch(digests: dict[str, str], source: WeightsSource) -> str | None:
    """A description of the hash mismatch, or ``None`` if the file matches every published hash."""
    for kind in ("sha256", "git_sha1"):
        expected = getattr(source, kind)
        if expected and digests[kind] != expected.lower():
            return f"{kind} is {digests[kind]}, expected {expected.lower()}"
    prefix = (source.sha256_prefix or "").lower()
    if prefix and not digests["sha256"].startswith(prefix):
        return f"sha256 is {digests['sha256']}, expected it to start with {prefix}"
    return None


def _problem(path: Path, source: WeightsSource) -> str | None:
    """What is wrong with ``path`` as ``source``'s file (the size first: no hashing gigabytes of junk)."""
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        return f"size is {size} bytes, expected {source.size}"
    return _mismatch(file_digests(path), source)


def verify_file(path: str | Path, source: WeightsSource) -> bool:
    """True when ``path`` matches the source's published size and hash(es)."""
    return _problem(Path(path), source) is None


def cache_status(key: str, source: WeightsSource) -> CacheStatus:
    """``"cached"`` (present and verified), ``"not cached"`` or ``"corrupt"`` (present, wrong or unreadable)."""
    path = cached_path(key, source)
    if not path.exists():
        return "not cached"
    try:
        return "cached" if _problem(path, source) is None else "corrupt"
    except OSError:  # a folder in its place, no read permission: unusable all the same
        return "corrupt"


def _import_hint(key: str) -> str:
    return f"anime weights import {key} FILE"


def fetch(key: str, source: WeightsSource, progress: bool = True) -> Path:
    """The verified cached file for ``key``, downloading it if needed (exit 3 on failure)."""
    dest = cached_path(key, source)
    if dest.exists():
        try:
            problem = _problem(dest, source)
        except OSError as exc:  # a folder in its place, no read permission
            problem = f"unreadable: {exc.strerror or exc}"
        if problem is None:
            return dest
        raise WeightsUnavailable(
            f"cached weights {dest} are corrupt ({problem}); delete the file and run "
            f"'anime weights pull {key}', or install a good copy with '{_import_hint(key)}'"
        )
    if os.environ.get("ANIME_OFFLINE"):
        raise WeightsUnavailable(
            f"weights for {key} are not cached and ANIME_OFFLINE is set; download {source.url} "
            f"elsewhere and run '{_import_hint(key)}'"
        )
    _download(key, source, dest, progress)
    return dest


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


def _stream(resp: Any, out: Any, key: str, source: WeightsSource, progress: bool) -> None:
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


def _download(key: str, source: WeightsSource, dest: Path, progress: bool) -> None:
    again = f"try again later, or download the file elsewhere and install it with '{_import_hint(key)}'"
    window = stall_seconds()
    with _sigterm_cleans_up(), atomic_path(dest, suffix=".part") as tmp:
        try:
            request = urllib.request.Request(source.url, headers={"User-Agent": "anime-core"})
            with urllib.request.urlopen(request, timeout=window) as resp, tmp.open("wb") as out:
                _stream(resp, out, key, source, progress)
        except _DownloadFailed as exc:
            raise WeightsUnavailable(
                f"could not download weights for {key} from {source.url}: {exc}; {again}"
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsUnavailable(
                f"could not download weights for {key} from {source.url} ({reason}); download the file "
                f"elsewhere and install it with '{_import_hint(key)}'"
            ) from exc
        problem = _problem(tmp, source)
        if problem is not None:  # raising inside atomic_path deletes the temp file: nothing is kept
            raise WeightsUnavailable(
                f"the file downloaded from {source.url} does not match its published size and hash ({problem}), "
                f"so it was not kept; get a genuine copy and install it with '{_import_hint(key)}'"
            )


def import_file(key: str, source: WeightsSource, file: str | Path) -> Path:
    """Verify ``file`` against the published size and hash and copy it into the cache atomically."""
    file = Path(file).expanduser()
    if not file.is_file():
        raise WeightsUnavailable(f"{file} is not a file; give the path of the downloaded weights")
    problem = _problem(file, source)
    if problem is not None:
        raise WeightsUnavailable(
            f"{file} is not the published weights for {key} ({problem}); download it again from {source.url}"
        )
    dest = cached_path(key, source)
    with _sigterm_cleans_up(), atomic_path(dest, suffix=".part") as tmp:
        shutil.copyfile(file, tmp)
    return dest
