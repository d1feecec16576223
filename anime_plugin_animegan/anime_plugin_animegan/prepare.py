"""Training-data preparation for AnimeGAN: grayscale and edge-smoothed grayscale copies of the anime frames,
the image sets x and y of G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo
animation", section 3.2.

For every anime frame ``a`` two files are written to the cache folder (``data.prepared``, by
default ``<data.anime>_prepared`` next to the anime folder):

- ``gray/<name>.png``: the grayscale image ``x`` (grayscale style and adversarial losses, eq. 3 and 6);
- ``smooth/<name>.png``: the edge-smoothed grayscale image ``y`` (edge-promoting loss, eq. 6),
  made as Y. Chen, Y.-K. Lai, Y.-J. Liu, "CartoonGAN: generative adversarial networks for photo
  cartoonization", section 3.2 does: Canny edges of the grayscale frame
  (thresholds 100/200 on 0-255, no pre-blur, as ``cv2.Canny``), dilated by a 5x5 square, and
  inside that mask each pixel replaced by a 5x5 Gaussian (sigma 1.1, OpenCV's default for size 5)
  blur of the colour frame; AnimeGAN then converts the result to grayscale.

Grayscale is BT.601 luma (Pillow's ``convert("L")``, the same as OpenCV's). Canny comes from
scikit-image (``skimage.feature.canny``). The step is idempotent: an output newer than its
source is kept. Unreadable files are skipped and named at the end. A cache folder that cannot be
written (a read-only data folder) is a :class:`ConfigError` that says to set ``data.prepared``.
Nothing is written before the anime folder, and the photo folder when one is set (a training
run), are found to hold images.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from anime_core.errors import ConfigError, UsageError
from anime_core.fsutil import atomic_path

if TYPE_CHECKING:
    from anime_plugin_animegan.config import AnimeGANConfig

log = logging.getLogger("anime.animegan")

KERNEL = 5
CANNY_LOW, CANNY_HIGH = 100, 200
GRAY, SMOOTH = "gray", "smooth"


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


def prepared_dir(cfg: AnimeGANConfig) -> Path:
    """``data.prepared`` or ``<data.anime>_prepared`` beside the anime folder."""
    anime = cfg.data.anime
    if not anime:
        raise ConfigError("no anime folder given; set data.anime=DIR ('anime prepare animegan' also takes --anime DIR)")
    explicit = cfg.data.prepared
    if explicit:
        return Path(explicit).expanduser()
    anime_dir = Path(anime).expanduser().resolve()
    return anime_dir.parent / f"{anime_dir.name}_prepared"


def targets(root: Path, anime_dir: Path, src: Path) -> tuple[Path, Path]:
    rel = src.relative_to(anime_dir).with_suffix(".png")
    return root / GRAY / rel, root / SMOOTH / rel


def _fresh(out: Path, src: Path) -> bool:
    return out.is_file() and out.stat().st_mtime >= src.stat().st_mtime


def _save(img: Image.Image, path: Path, root: Path) -> None:
    try:
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise ConfigError(
            f"cannot write the prepared copies to {root} ({exc.strerror}); the data may stay read-only: "
            "put them in a writable folder with data.prepared=FOLDER"
        ) from None


@dataclass
class PrepareReport:
    written: int = 0
    skipped: int = 0  # already up to date
    failed: list[str] = field(default_factory=list)
    folder: Path | None = None


def prepare(cfg: AnimeGANConfig, progress: bool = True) -> PrepareReport:
    """``anime prepare animegan --anime DIR``: write the gray and smooth copies of every anime frame."""
    from tqdm.auto import tqdm

    from anime_core.training.data import list_images

    anime_dir = Path(cfg.data.anime or "").expanduser()
    root = prepared_dir(cfg)
    files = list_images(anime_dir, "anime folder (data.anime)")
    if cfg.data.photo:  # a training run: a wrong photo folder fails before anything is written
        list_images(cfg.data.photo, "photo folder (data.photo)")
    report = PrepareReport(folder=root)
    for src in tqdm(files, desc="animegan prepare", unit="img", disable=not progress):
        gray_path, smooth_path = targets(root, anime_dir, src)
        if _fresh(gray_path, src) and _fresh(smooth_path, src):
            report.skipped += 1
            continue
        try:
            with Image.open(src) as im:
                rgb = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            report.failed.append(src.name)
            continue
        _save(Image.fromarray(rgb).convert("L"), gray_path, root)
        _save(Image.fromarray(edge_smooth(rgb)).convert("L"), smooth_path, root)
        report.written += 1
    if report.failed:
        names = ", ".join(report.failed[:10]) + (" ..." if len(report.failed) > 10 else "")
        log.warning("skipped %d unreadable anime images: %s", len(report.failed), names)
    if progress:
        print(f"prepared {root}: {report.written} written, {report.skipped} up to date, "
              f"{len(report.failed)} unreadable" + (f" ({', '.join(report.failed[:10])})" if report.failed else ""))
    return report
