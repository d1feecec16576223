"""Training-data preparation for AnimeGAN: grayscale and edge-smoothed grayscale copies of the anime frames,
the image sets x and y of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo
animation", section 3.2.

For every anime frame ``a`` two files are written to the prepared folder:

- ``gray/<name>.png``: the grayscale image ``x`` (grayscale style and adversarial losses, eq. 3 and 6);
- ``smooth/<name>.png``: the edge-smoothed grayscale image ``y`` (edge-promoting loss, eq. 6),
  made as Y. Chen, Y.-K. Lai, Y.-J. Liu, "CartoonGAN: generative adversarial networks for photo
  cartoonization", section 3.2 does: Canny edges of the grayscale frame
  (thresholds 100/200 on 0-255, no pre-blur, as ``cv2.Canny``), dilated by a 5x5 square, and
  inside that mask each pixel replaced by a 5x5 Gaussian (sigma 1.1, OpenCV's default for size 5)
  blur of the colour frame; AnimeGAN then converts the result to grayscale.

and, with ``data.edge_images: color``, ``smooth_color/<name>.png``, the colour edge-smoothed frame.

Grayscale is BT.601 luma (Pillow's ``convert("L")``, the same as OpenCV's). Canny comes from
scikit-image (``skimage.feature.canny``). Unreadable files are skipped and named.

Where: by default a cache entry ``$ANIME_HOME/prepared/<key>/``, never beside the user's data (which
may be read-only, and is not ours to write to). The key is a SHA-256 of the anime files' relative
names, sizes and modification times (plus :data:`RECIPE` and ``data.edge_images``): reading only the
file metadata keeps a run's start instant on a folder of thousands of frames, where hashing the
contents would read gigabytes each time, and any edit of a frame changes its size or time, so a
changed folder never meets stale copies (a copy of the folder with new times is prepared once more).
An entry is written into a temp folder and renamed into place when complete, under a lock
(``<key>.lock``), so two runs preparing the same data at once do it once and a crash leaves no
half-entry. ``prepared.json`` in the entry says what it was made from. The run records the entry in
``config.yaml`` as ``data.prepared_cache``. ``data.prepared=FOLDER`` instead uses a folder of your
own, updated in place (an output newer than its frame is kept). Nothing is written before the anime
folder, and the photo folder when one is set (a training run), are found to hold images.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from anime_core.errors import ConfigError, UsageError
from anime_core.files import list_images
from anime_core.fsutil import atomic_path

if TYPE_CHECKING:
    from anime_plugin_animegan.config import AnimeGANConfig

log = logging.getLogger("anime.animegan")

KERNEL = 5
CANNY_LOW, CANNY_HIGH = 100, 200
GRAY, SMOOTH, SMOOTH_COLOR = "gray", "smooth", "smooth_color"
#: the version of what a cache entry holds; bump it when the preparation's output changes
RECIPE = 1
MANIFEST = "prepared.json"


def gaussian_kernel(size: int = KERNEL, sigma: float = 0.0) -> np.ndarray:
    """2D Gaussian (outer product of 1D ones); sigma <= 0 uses OpenCV's rule 0.3*((size-1)/2 - 1) + 0.8."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def canny_edges(gray: np.ndarray) -> np.ndarray:
    """Boolean Canny edge map of a uint8 grayscale image (hysteresis 100/200, no pre-blur)."""
    try:
        from skimage.feature import canny
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency of this plugin
        raise UsageError("AnimeGAN data preparation needs scikit-image; run: pip install scikit-image") from exc
    return canny(gray.astype(np.float64), sigma=0.0, low_threshold=CANNY_LOW, high_threshold=CANNY_HIGH)


def edge_smooth(rgb: np.ndarray) -> np.ndarray:
    """CartoonGAN's edge smoothing of an (H, W, 3) uint8 image, returned as uint8 (H, W, 3)."""
    from scipy import ndimage

    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    mask = ndimage.binary_dilation(canny_edges(gray), structure=np.ones((KERNEL, KERNEL), bool))
    k = gaussian_kernel()
    blurred = np.stack(
        [ndimage.correlate(rgb[..., c].astype(np.float64), k, mode="mirror") for c in range(3)], axis=-1
    )
    out = rgb.copy()
    out[mask] = np.clip(blurred[mask], 0, 255).astype(np.uint8)  # truncation, as the uint8 assignment in the original
    return out


def cache_root() -> Path:
    """``$ANIME_HOME/prepared``: where prepared copies are kept unless ``data.prepared`` names a folder."""
    from anime_core.weights.store import anime_home

    return anime_home() / "prepared"


def anime_folder(cfg: AnimeGANConfig) -> Path:
    anime = cfg.data.anime
    if not anime:
        raise ConfigError("no anime folder given; set data.anime=DIR ('anime prepare animegan' also takes --anime DIR)")
    return Path(anime).expanduser()


def data_key(anime_dir: Path, files: list[Path], color: bool) -> str:
    """SHA-256 (32 hex digits) of the frames' relative names, sizes and times, the recipe and the edge images."""
    digest = hashlib.sha256(json.dumps({"recipe": RECIPE, "canny": [CANNY_LOW, CANNY_HIGH], "kernel": KERNEL,
                                        "color": color}).encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(anime_dir).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8",
                                                                                                       "surrogateescape"))
    return digest.hexdigest()[:32]


def _wants_color(cfg: AnimeGANConfig) -> bool:
    return cfg.data.edge_images == "color"


def prepared_dir(cfg: AnimeGANConfig) -> Path:
    """``data.prepared``, or the cache entry ``$ANIME_HOME/prepared/<key>`` of the anime folder's frames."""
    anime_dir = anime_folder(cfg)
    explicit = cfg.data.prepared
    if explicit:
        return Path(explicit).expanduser()
    files = list_images(anime_dir, "anime folder (data.anime)", ConfigError)
    return cache_root() / data_key(anime_dir, files, _wants_color(cfg))


def targets(root: Path, anime_dir: Path, src: Path) -> tuple[Path, Path]:
    rel = src.relative_to(anime_dir).with_suffix(".png")
    return root / GRAY / rel, root / SMOOTH / rel


def color_target(root: Path, anime_dir: Path, src: Path) -> Path:
    """Where the colour edge-smoothed copy of ``src`` is kept (``data.edge_images: color``)."""
    return root / SMOOTH_COLOR / src.relative_to(anime_dir).with_suffix(".png")


def _fresh(out: Path, src: Path) -> bool:
    return out.is_file() and out.stat().st_mtime >= src.stat().st_mtime


def _unwritable(root: Path, exc: OSError) -> ConfigError:
    if root.is_relative_to(cache_root()):
        todo = "set ANIME_HOME to a writable folder, or put them in one with data.prepared=FOLDER"
    else:
        todo = "put them in a writable folder with data.prepared=FOLDER (or leave it unset for the cache)"
    return ConfigError(f"cannot write the prepared copies to {root} ({exc.strerror}); {todo}")


def _save(img: Image.Image, path: Path, root: Path) -> None:
    try:
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise _unwritable(root, exc) from None


@dataclass
class PrepareReport:
    written: int = 0
    skipped: int = 0  # already up to date (or the whole cache entry was there)
    failed: list[str] = field(default_factory=list)
    folder: Path | None = None
    cached: bool = False  # the cache entry existed: nothing was read but the file list


def prepare(cfg: AnimeGANConfig, progress: bool = True) -> PrepareReport:
    """``anime prepare animegan --anime DIR``: the gray and smooth copies of every anime frame; where they are."""
    anime_dir = anime_folder(cfg)
    files = list_images(anime_dir, "anime folder (data.anime)", ConfigError)
    if cfg.data.photo:  # a training run: a wrong photo folder fails before anything is written
        list_images(cfg.data.photo, "photo folder (data.photo)", ConfigError)
    color = _wants_color(cfg)
    explicit = cfg.data.prepared
    if explicit:
        root = Path(explicit).expanduser()
        report = _write_copies(root, anime_dir, files, color, progress, PrepareReport(folder=root))
    else:
        report = _cached(anime_dir, files, color, progress)
    if report.failed:
        names = ", ".join(report.failed[:10]) + (" ..." if len(report.failed) > 10 else "")
        log.warning("skipped %d unreadable anime images: %s", len(report.failed), names)
    if progress:
        done = "already prepared (cached)" if report.cached else \
            f"{report.written} written, {report.skipped} up to date"
        print(f"prepared {report.folder}: {done}, {len(report.failed)} unreadable"
              + (f" ({', '.join(report.failed[:10])})" if report.failed else ""))
    return report


def _write_copies(root: Path, anime_dir: Path, files: list[Path], color: bool, progress: bool,
                  report: PrepareReport) -> PrepareReport:
    """Write the copies that are missing or older than their frame into ``root``."""
    from tqdm.auto import tqdm

    for src in tqdm(files, desc="animegan prepare", unit="img", disable=not progress):
        outs = [*targets(root, anime_dir, src), *([color_target(root, anime_dir, src)] if color else [])]
        if all(_fresh(out, src) for out in outs):
            report.skipped += 1
            continue
        try:
            with Image.open(src) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            report.failed.append(src.name)
            continue
        smooth = edge_smooth(rgb)
        _save(Image.fromarray(rgb).convert("L"), outs[0], root)
        _save(Image.fromarray(smooth).convert("L"), outs[1], root)
        if color:
            _save(Image.fromarray(smooth), outs[2], root)
        report.written += 1
    return report


def _cached(anime_dir: Path, files: list[Path], color: bool, progress: bool) -> PrepareReport:
    """The cache entry of these frames: found, or written into a temp folder and renamed, under a lock."""
    base = cache_root()
    root = base / data_key(anime_dir, files, color)
    if not root.is_dir():
        try:
            base.mkdir(parents=True, exist_ok=True)
            with _locked(base / f"{root.name}.lock", root, progress):
                if not root.is_dir():  # another run may have finished it while we waited
                    return _fill(root, anime_dir, files, color, progress)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise _unwritable(root, exc) from None
    manifest = _read_manifest(root)
    return PrepareReport(skipped=len(files) - len(manifest.get("failed", [])), failed=list(manifest.get("failed", [])),
                         folder=root, cached=True)


def _fill(root: Path, anime_dir: Path, files: list[Path], color: bool, progress: bool) -> PrepareReport:
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        report = _write_copies(tmp, anime_dir, files, color, progress, PrepareReport(folder=root))
        manifest = {"anime": str(anime_dir.absolute()), "frames": len(files), "failed": report.failed,
                    "recipe": RECIPE, "edge_images": "color" if color else "gray",
                    "key": "sha256 of the frames' relative names, sizes and modification times"}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0o700
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():  # not another writer's finished entry (no lock on this system): a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _read_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / MANIFEST).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _locked(path: Path, root: Path, progress: bool) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (none on Windows), saying so when another run holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: the rename still keeps entries whole
        yield
        return
    with path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if progress:
                print(f"waiting for another run that is preparing {root}", file=sys.stderr, flush=True)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
