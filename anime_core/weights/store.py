"""The weights cache: verified downloads, offline import, integrity checks.

Cache root: ``$ANIME_HOME`` or ``~/.cache/anime``; a style's file lives in
``<root>/weights/<model>/<style>/<file name>``. A download streams to a temp file beside its
target with a progress bar, is checked against the published hash (sha256, or the git blob
SHA-1 that GitHub shows), then renamed into place: a partial or tampered file never becomes
visible. Without network (or with ``ANIME_OFFLINE=1``) the error gives the URL and the
``anime weights import`` command that installs a file obtained elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from anime_core.errors import WeightsUnavailable
from anime_core.fsutil import atomic_path
from anime_core.specs import StyleSpec, WeightsSource

CHUNK = 1 << 20


def anime_home() -> Path:
    """The cache root: ``$ANIME_HOME`` or ``~/.cache/anime``."""
    return Path(os.environ.get("ANIME_HOME") or Path.home() / ".cache" / "anime").expanduser()


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


def verify_file(path: str | Path, source: WeightsSource) -> bool:
    """True when ``path`` matches the source's published hash(es)."""
    return _mismatch(file_digests(path), source) is None


def _import_hint(key: str) -> str:
    return f"anime weights import {key} FILE"


def fetch(key: str, source: WeightsSource, progress: bool = True) -> Path:
    """The verified cached file for ``key``, downloading it if needed (exit 3 on failure)."""
    dest = cached_path(key, source)
    if dest.exists():
        problem = _mismatch(file_digests(dest), source)
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


def _download(key: str, source: WeightsSource, dest: Path, progress: bool) -> None:
    with atomic_path(dest, suffix=".part") as tmp:
        try:
            request = urllib.request.Request(source.url, headers={"User-Agent": "anime-core"})
            with urllib.request.urlopen(request, timeout=30) as resp, tmp.open("wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=f"downloading {key}", disable=not progress, leave=False
                ) as bar:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsUnavailable(
                f"could not download weights for {key} from {source.url} ({reason}); download the file "
                f"elsewhere and install it with '{_import_hint(key)}'"
            ) from exc
        problem = _mismatch(file_digests(tmp), source)
        if problem is not None:  # raising inside atomic_path deletes the temp file: nothing is kept
            raise WeightsUnavailable(
                f"the file downloaded from {source.url} does not match its published hash ({problem}), "
                f"so it was not kept; get a genuine copy and install it with '{_import_hint(key)}'"
            )


def import_file(key: str, source: WeightsSource, file: str | Path) -> Path:
    """Verify ``file`` against the published hash and copy it into the cache atomically."""
    file = Path(file).expanduser()
    if not file.is_file():
        raise WeightsUnavailable(f"{file} is not a file; give the path of the downloaded weights")
    problem = _mismatch(file_digests(file), source)
    if problem is not None:
        raise WeightsUnavailable(
            f"{file} is not the published weights for {key} ({problem}); download it again from {source.url}"
        )
    dest = cached_path(key, source)
    with atomic_path(dest, suffix=".part") as tmp:
        shutil.copyfile(file, tmp)
    return dest
