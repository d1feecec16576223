"""The core's dataset kinds: ``images``, ``unpaired``, ``paired`` and ``noise``.

Every item is a dict of tensors with images in [-1, 1]. Augmentation randomness is derived
from ``(seed, epoch, index)``, so an item is the same whatever worker loads it; this is what
makes ``--resume`` exact. Unreadable images, and images past Pillow's decompression-bomb limit,
are skipped with a warning and a count.
"""

from __future__ import annotations

import errno
import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from anime_core.errors import ConfigError
from anime_core.files import list_images, match_pairs
from anime_core.text import printable

if TYPE_CHECKING:
    from anime_core.schema import RunConfig

log = logging.getLogger("anime.data")

#: what reading one bad image raises: skipped, never fatal (DecompressionBombError is no OSError)
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)


def readable(files: Sequence[Path], what: str = "images") -> list[Path]:
    """Drop files whose header Pillow cannot read or that are bomb-sized, warning once per reason."""
    good, bad, huge = [], [], []
    for f in files:
        try:
            with Image.open(f) as im:
                im.size  # noqa: B018 - header parse
            good.append(f)
        except Image.DecompressionBombError:
            huge.append(f)
        except UNREADABLE:
            bad.append(f)
    if bad:
        log.warning("skipping %d unreadable %s: %s", len(bad), what, _names(bad))
    if huge:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # where Pillow refuses to open
        log.warning(
            "skipping %d %s over %d pixels (decompression-bomb sized): %s", len(huge), what, limit, _names(huge)
        )
    if not good:
        raise ConfigError(f"none of the {len(files)} {what} could be read")
    return good


def _names(files: Sequence[Path]) -> str:
    """The first few file names, escaped: a name may hold terminal escapes or a newline."""
    return ", ".join(printable(p.name) for p in files[:5]) + (" ..." if len(files) > 5 else "")


@contextmanager
def prepared_data_errors(cfg: RunConfig) -> Iterator[None]:
    """A read-only data folder: say where prepared copies can go instead of "unexpected PermissionError"."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        where = exc.filename or "a file beside the data"
        if hasattr(cfg.data, "prepared"):  # a model with prepared copies (animegan) declares where they go
            todo = "the data may stay read-only: put the prepared copies in a writable folder with data.prepared=FOLDER"
        else:
            todo = "make it writable, or copy the data to a writable folder"
        raise ConfigError(f"cannot write {where} ({exc.strerror}); {todo}") from None


def load_rgb(path: Path) -> Image.Image:
    """Decode to RGB, honouring EXIF orientation."""
    from PIL import ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


def item_seed(seed: int, epoch: int, index: int, salt: str = "") -> int:
    return zlib.crc32(f"{seed}/{epoch}/{index}/{salt}".encode())


def train_transform(image_size: int, flip: bool = True, extra: Sequence[Any] = ()) -> v2.Compose:
    """Resize the short side, random crop, optional flip, to a float tensor in [-1, 1]."""
    ops: list[Any] = [v2.ToImage(), v2.Resize(image_size, antialias=True), v2.RandomCrop(image_size)]
    if flip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [*extra, v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    return v2.Compose(ops)


class SeededDataset(Dataset, ABC):
    """Base: per-item seeded augmentation and skip-on-error loading."""

    max_retries = 20

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @abstractmethod
    def load(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index``; runs under a per-item seed, so augmentation is reproducible."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        last: Exception | None = None
        for attempt in range(self.max_retries):
            i = (index + attempt) % len(self)
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only, the one fork_rng restores: torch.manual_seed would also queue a
                # seed for every accelerator backend (a Python stack trace each, ~1 ms an item) and
                # reseed a CUDA generator that fork_rng(devices=[]) does not restore
                torch.random.default_generator.manual_seed(item_seed(self.seed, self.epoch, i))
                try:
                    return self.load(i)
                except UNREADABLE as exc:
                    self.skipped += 1
                    last = exc
                    log.warning("skipping unreadable image at index %d: %s", i, printable(exc))
        raise ConfigError(f"{self.max_retries} images in a row could not be read (last: {last})")


class ImageFolderDataset(SeededDataset):
    """One folder of images -> ``{"image"}``; with class sub-folders also ``{"label"}``."""

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        seed: int = 0,
        labels: bool = False,
        transform: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(seed)
        root = Path(root)
        self.files = readable(list_images(root, "data folder", ConfigError))
        self.transform = transform or train_transform(image_size)
        self.classes: list[str] = []
        if labels:
            self.classes = sorted({p.relative_to(root).parts[0] for p in self.files if p.parent != root})
            if len(self.classes) < 2:
                raise ConfigError(f"class-conditional training needs two or more sub-folders in {root}")
            self.files = [p for p in self.files if p.parent != root]
            self._labels = [self.classes.index(p.relative_to(root).parts[0]) for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": self.transform(load_rgb(self.files[index]))}
        if self.classes:
            item["label"] = torch.tensor(self._labels[index])
        return item


class UnpairedDataset(SeededDataset):
    """Photos and anime images with no correspondence -> ``{"photo", "anime"}``.

    Length is the number of photos; each photo meets a random anime image.
    """

    def __init__(
        self,
        photo: str | Path,
        anime: str | Path,
        image_size: int,
        seed: int = 0,
        photo_transform: Callable[..., Any] | None = None,
        anime_transform: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(seed)
        self.photos = readable(list_images(photo, "photo folder (data.photo)", ConfigError), "photos")
        self.anime = readable(list_images(anime, "anime folder (data.anime)", ConfigError), "anime images")
        self.photo_transform = photo_transform or train_transform(image_size)
        self.anime_transform = anime_transform or train_transform(image_size)

    def __len__(self) -> int:
        return len(self.photos)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        j = int(torch.randint(len(self.anime), ()).item())
        return {
            "photo": self.photo_transform(load_rgb(self.photos[index])),
            "anime": self.anime_transform(load_rgb(self.anime[j])),
        }


def paired_files(photo: str | Path, anime: str | Path) -> list[tuple[Path, Path]]:
    """(photo, anime) files of two folders paired by relative name (:func:`anime_core.files.match_pairs`)."""
    pairs = match_pairs(photo, anime, ("photo folder (data.photo)", "anime folder (data.anime)"), ConfigError,
                        "paired training matches files by relative name without extension; give both the same name")
    return [(p, a) for _, p, a in pairs]


class PairedDataset(SeededDataset):
    """Photo/anime pairs with the same file name -> ``{"photo", "anime"}``, cropped and flipped together."""

    def __init__(
        self,
        photo: str | Path,
        anime: str | Path,
        image_size: int,
        seed: int = 0,
        transform: Callable[..., Any] | None = None,
        pairs: Sequence[tuple[Path, Path]] | None = None,
    ) -> None:
        super().__init__(seed)
        self.pairs = list(pairs) if pairs is not None else paired_files(photo, anime)
        self.transform = transform or train_transform(image_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        p, a = self.pairs[index]
        photo, anime = load_rgb(p), load_rgb(a)
        if anime.size != photo.size:
            anime = anime.resize(photo.size, Image.Resampling.BICUBIC)
        x, y = self.transform(
            tv_tensors.Image(v2.functional.pil_to_tensor(photo)), tv_tensors.Image(v2.functional.pil_to_tensor(anime))
        )
        return {"photo": x, "anime": y}


class NoiseDataset(SeededDataset):
    """Latent vectors ``{"z"}`` of shape (latent_dim,), the same for the same (seed, index)."""

    def __init__(self, size: int, latent_dim: int, seed: int = 0) -> None:
        super().__init__(seed)
        self.size, self.latent_dim = size, latent_dim

    def __len__(self) -> int:
        return self.size

    def load(self, index: int) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(self.latent_dim)}
